/*
 * taskhubctl entity list|show|signal|clean against a real taskhubd, and the group's help, man page and
 * completion. No C SDK entity worker exists, so where an entity needs state the test plays the worker by hand
 * (GetWorkItems asking for entity work, CompleteEntityTask with the state it chooses); everything else stays
 * transient.
 */
#include "ctl_harness.h"
#include "orchestrator_service.pb-c.h"
#include "th_client.h"
#include "th_stream.h"

#include <unistd.h>

static const char *const subs[] = {"list", "show", "signal", "clean"};
#define N_SUBS 4

/* Completes the next entity batch, which must be |n_ops| operations for |id|, leaving |state|. */
static void run_batch(th_client *raw, th_stream *w, const char *id, size_t n_ops, const char *state)
{
  WorkItem *wi = th_work_expect(w, CTL_WAIT_MS, "an entity batch");
  ASSERT_EQ(wi->request_case, WORK_ITEM__REQUEST_ENTITY_REQUEST);
  ASSERT_STR_EQ(wi->entityrequest->instanceid, id);
  ASSERT_EQ(wi->entityrequest->n_operations, n_ops);
  OperationResultSuccess ok = OPERATION_RESULT_SUCCESS__INIT;
  OperationResult res[8], *resp[8];
  ASSERT_LE(n_ops, 8);
  for (size_t i = 0; i < n_ops; i++) {
    operation_result__init(&res[i]);
    res[i].result_type_case = OPERATION_RESULT__RESULT_TYPE_SUCCESS;
    res[i].success = &ok;
    resp[i] = &res[i];
  }
  EntityBatchResult r = ENTITY_BATCH_RESULT__INIT;
  Google__Protobuf__StringValue st = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
  st.value = (char *)state;
  r.n_results = n_ops;
  r.results = resp;
  r.entitystate = &st;
  r.completiontoken = wi->completiontoken;
  char *details = NULL;
  grpc_status_code sc = th_call_unary(raw, "/TaskHubSidecarService/CompleteEntityTask", &r.base,
                                      &complete_task_response__descriptor, 10000, NULL, &details);
  if (sc != GRPC_STATUS_OK)
    TEST_FAIL("CompleteEntityTask: %s %s", th_status_name(sc), details);
  free(details);
  work_item__free_unpacked(wi, NULL);
}

/* ------------------------------------------------------------------ help, man page, completion */

TEST_IMPL(ctl_entity_help)
{
  const char *b = getenv("TASKHUBCTL_BIN");
  if (!b || !*b)
    return TEST_SKIP;
  /* The group alone is a usage error naming its commands; with --help it is the group's page. */
  ctl_res r = CTL(NULL, "entity");
  ASSERT_EXIT(r, 2);
  ASSERT_STR_CONTAINS(r.err, "entity needs a command: list, show, signal, clean");
  ctl_res_free(&r);
  r = CTL(NULL, "entity", "lst");
  ASSERT_EXIT(r, 2);
  ASSERT_STR_CONTAINS(r.err, "no such command: entity lst (entity has: list, show, signal, clean)");
  ctl_res_free(&r);
  r = CTL(NULL, "entiy", "list");
  ASSERT_EXIT(r, 2);
  ASSERT_STR_CONTAINS(r.err, "did you mean 'entity'?");
  ctl_res_free(&r);
  ctl_res g1 = CTL(NULL, "entity", "--help"), g2 = CTL(NULL, "help", "entity");
  ASSERT_EXIT(g1, 0);
  ASSERT_EXIT(g2, 0);
  ASSERT_STR_EQ(g1.out, g2.out);
  ctl_res tool = CTL(NULL, "--help");
  for (size_t i = 0; i < N_SUBS; i++) {
    char want[64];
    snprintf(want, sizeof want, "\n  entity %s ", subs[i]);
    ASSERT_STR_CONTAINS(g1.out, want);
    ASSERT_STR_CONTAINS(tool.out, want);
  }
  ctl_res_free(&g1);
  ctl_res_free(&g2);
  ctl_res_free(&tool);

  /* Each command: both ways to its page, which the man page covers option by option. */
  FILE *f = fopen(getenv("TASKHUBCTL_MAN"), "r");
  ASSERT(f != NULL);
  char *man = NULL;
  size_t cap = 0;
  ASSERT_GE(getdelim(&man, &cap, '\0', f), 0);
  fclose(f);
  for (char *p = man; (p = strstr(p, "\\-")) != NULL;) /* roff's \- is a plain - in what help prints */
    memmove(p, p + 1, strlen(p));
  static const char *const opts[N_SUBS][8] = {
      {"--prefix PREFIX", "--transient", "--state", "--limit N", "--all", "--page-size N", "--continuation TOKEN"},
      {NULL},
      {"--input JSON", "--at TIME", "--in DURATION"},
      {"--remove-empty", "--release-orphaned-locks"},
  };
  for (size_t i = 0; i < N_SUBS; i++) {
    ctl_res a = CTL(NULL, "help", "entity", subs[i]);
    ctl_res c = CTL(NULL, "entity", subs[i], "--help");
    ASSERT_EXIT(a, 0);
    ASSERT_EXIT(c, 0);
    ASSERT_STR_EQ(a.out, c.out);
    char want[64];
    snprintf(want, sizeof want, "Usage: taskhubctl entity %s", subs[i]);
    ASSERT_STR_CONTAINS(a.out, want);
    snprintf(want, sizeof want, "\n.SS entity %s\n", subs[i]);
    ASSERT_STR_CONTAINS(man, want);
    for (size_t k = 0; k < 8 && opts[i][k]; k++) {
      ASSERT_STR_CONTAINS(a.out, opts[i][k]);
      char name[48];
      snprintf(name, sizeof name, "%.*s", (int)strcspn(opts[i][k], " "), opts[i][k]);
      ASSERT_STR_CONTAINS(man, name);
    }
    ctl_res_free(&a);
    ctl_res_free(&c);
  }
  free(man);
  return 0;
}

/* What bash's completion offers for each of |lines|, one line each (caller frees). */
static char *bash_complete(const char *script, const char *const *lines)
{
  char spath[] = "/tmp/ctl-ebash-XXXXXX";
  int fd = mkstemp(spath);
  ASSERT(fd >= 0);
  ASSERT_EQ(write(fd, script, strlen(script)), (ssize_t)strlen(script));
  close(fd);
  char prog[4096];
  int n = snprintf(prog, sizeof prog,
                   "source '%s' || exit 9\nt() { COMP_LINE=\"$1\"; COMP_POINT=${#1}; COMPREPLY=(); _taskhubctl; "
                   "echo \"${COMPREPLY[*]}\"; }\n",
                   spath);
  for (size_t i = 0; lines[i]; i++)
    n += snprintf(prog + n, sizeof prog - (size_t)n, "t '%s'\n", lines[i]);
  ASSERT_LT(n, (int)sizeof prog);
  char ppath[] = "/tmp/ctl-eprog-XXXXXX";
  fd = mkstemp(ppath);
  ASSERT(fd >= 0);
  ASSERT_EQ(write(fd, prog, (size_t)n), n);
  close(fd);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "bash --norc --noprofile '%s'", ppath);
  FILE *f = popen(cmd, "r");
  ASSERT(f != NULL);
  char *out = NULL;
  size_t cap = 0;
  ASSERT_GE(getdelim(&out, &cap, '\0', f), 0);
  ASSERT_EQ(pclose(f), 0);
  unlink(spath);
  unlink(ppath);
  return out;
}

TEST_IMPL(ctl_entity_completion)
{
  hub h;
  int rc = hub_start(&h, false);
  if (rc)
    return rc;
  ASSERT_OK(dt_client_signal_entity(h.c, "@counter@one", "add", NULL, 0));
  ASSERT_OK(dt_client_signal_entity(h.c, "@counter@two", "add", NULL, 0));
  ASSERT_OK(dt_client_signal_entity(h.c, "@other@x", "add", NULL, 0));
  ctl_res r = CTL(NULL, "completion", "bash");
  ASSERT_EXIT(r, 0);
  const char *bin = getenv("TASKHUBCTL_BIN");
  char show_line[256];
  snprintf(show_line, sizeof show_line, "%s -a %s entity show @counter@", bin, h.addr);
  const char *const lines[] = {
      "taskhubctl ent",
      "taskhubctl entity ",
      "taskhubctl entity s",
      "taskhubctl entity list --tr",
      "taskhubctl entity clean --re",
      "taskhubctl -o json entity signal x op --i",
      "taskhubctl help ent",
      show_line,
      NULL,
  };
  static const char *const want[] = {
      "entity\n",
      "list show signal clean\n",
      "show signal\n",
      "--transient\n",
      "--remove-empty --release-orphaned-locks\n",
      "--input --in\n",
      "entity\n",
      "@counter@one @counter@two\n", /* from the server, transient ones included */
  };
  char *out = bash_complete(r.out, lines);
  const char *p = out;
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    size_t len = strcspn(p, "\n") + 1;
    if (strlen(want[i]) != len || strncmp(p, want[i], len) != 0)
      TEST_FAIL("completing \"%s\": got \"%.*s\", want \"%.*s\"", lines[i], (int)len - 1, p,
                (int)strlen(want[i]) - 1, want[i]);
    p += len;
  }
  free(out);
  ctl_res_free(&r);

  r = CTL(NULL, "completion", "zsh");
  ASSERT_EXIT(r, 0);
  ASSERT_STR_CONTAINS(r.out, "'1:entity command:(list show signal clean)'");
  ASSERT_STR_CONTAINS(r.out, "'1:entity id:_taskhubctl_entities'");
  if (access("/usr/bin/zsh", X_OK) == 0) {
    char zpath[] = "/tmp/ctl-ezsh-XXXXXX";
    int fd = mkstemp(zpath);
    ASSERT(fd >= 0);
    ASSERT_EQ(write(fd, r.out, strlen(r.out)), (ssize_t)strlen(r.out));
    close(fd);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "zsh -n '%s'", zpath);
    ASSERT_EQ(system(cmd), 0);
    unlink(zpath);
  }
  ctl_res_free(&r);
  hub_stop(&h);
  return 0;
}

/* ------------------------------------------------------------------ the commands */

TEST_IMPL(ctl_entity_signal_show)
{
  hub h;
  int rc = hub_start(&h, false);
  if (rc)
    return rc;
  /* signal: the name part lowercased, the operation and input as given. */
  ctl_res r = CTL(h.addr, "entity", "signal", "@Counter@k1", "add", "--input", "5");
  ASSERT_EXIT(r, 0);
  ASSERT_STR_CONTAINS(r.out, "signalled @Counter@k1: add");
  ctl_res_free(&r);
  dt_entity *en = NULL;
  ASSERT_OK(dt_client_get_entity(h.c, "@counter@k1", false, &en));
  ASSERT_EQ(en->backlog, 1);
  dt_entity_free(en);

  /* Scheduled: the time is said (JSON: scheduledAt), and nothing is queued yet. */
  int64_t before = wall_ms();
  r = CTL(h.addr, "--json", "entity", "signal", "@counter@later", "add", "--in", "1h");
  ASSERT_EXIT(r, 0);
  json_object *doc = ctl_doc(&r);
  ASSERT_STR_EQ(jstr(doc, "instanceId"), "@counter@later");
  ASSERT_STR_EQ(jstr(doc, "entityOperation"), "add");
  ASSERT(is_rfc3339_ms(jstr(doc, "scheduledAt")));
  json_object_put(doc);
  ctl_res_free(&r);
  ASSERT_EQ(dt_client_get_entity(h.c, "@counter@later", false, &en), DT_ERR_NOT_FOUND);
  (void)before;

  /* Usage errors before any call: a bad id, input that is no JSON, --at with --in. */
  r = CTL(h.addr, "entity", "signal", "counter-k1", "add");
  ASSERT_EXIT(r, 2);
  ASSERT_STR_CONTAINS(r.err, "not an entity id (@name@key)");
  ctl_res_free(&r);
  r = CTL(h.addr, "entity", "signal", "@c@k", "add", "--input", "five");
  ASSERT_EXIT(r, 2);
  ctl_res_free(&r);
  r = CTL(h.addr, "entity", "signal", "@c@k", "add", "--at", "2030-01-01T00:00:00Z", "--in", "5m");
  ASSERT_EXIT(r, 2);
  ASSERT_STR_CONTAINS(r.err, "--at and --in exclude each other");
  ctl_res_free(&r);
  /* The server's refusal comes with its message: an operation name over --max-name-length. */
  char longop[400];
  memset(longop, 'x', sizeof longop - 1);
  longop[sizeof longop - 1] = '\0';
  r = CTL(h.addr, "--json", "entity", "signal", "@c@k", longop);
  ASSERT_EXIT(r, 2);
  doc = ctl_doc(&r);
  json_object *err = jget(doc, "error");
  ASSERT(err != NULL);
  ASSERT_STR_EQ(jstr(err, "grpcCode"), "INVALID_ARGUMENT");
  ASSERT_STR_CONTAINS(jstr(err, "grpcMessage"), "name");
  json_object_put(doc);
  ctl_res_free(&r);

  /* show, transient: no state yet. */
  r = CTL(h.addr, "entity", "show", "@COUNTER@k1");
  ASSERT_EXIT(r, 0);
  ASSERT_STR_CONTAINS(r.out, "Entity:         @counter@k1");
  ASSERT_STR_CONTAINS(r.out, "none (transient");
  ASSERT_STR_CONTAINS(r.out, "Backlog:        1 operation queued");
  ctl_res_free(&r);

  /* A worker runs it and leaves state {"n":5}: show has it, in text and JSON. */
  th_client *raw = th_client_open(h.srv.port);
  GetWorkItemsRequest req = GET_WORK_ITEMS_REQUEST__INIT;
  req.maxconcurrententityworkitems = 4;
  th_stream *w = th_work_open(raw, &req);
  run_batch(raw, w, "@counter@k1", 1, "{\"n\":5}");
  th_stream_free(w);
  th_client_close(raw);
  r = CTL(h.addr, "entity", "show", "@counter@k1");
  ASSERT_EXIT(r, 0);
  ASSERT_STR_CONTAINS(r.out, "State:          yes");
  ASSERT_STR_CONTAINS(r.out, "State value:    {\"n\":5}");
  ASSERT_STR_CONTAINS(r.out, "Backlog:        0 operations queued");
  ctl_res_free(&r);
  r = CTL(h.addr, "-o", "json", "entity", "show", "@counter@k1");
  ASSERT_EXIT(r, 0);
  doc = ctl_doc(&r);
  ASSERT_STR_EQ(jstr(doc, "entityId"), "@counter@k1");
  ASSERT_STR_EQ(jstr(doc, "name"), "counter");
  ASSERT_STR_EQ(jstr(doc, "key"), "k1");
  ASSERT(json_object_get_boolean(jget(doc, "exists")));
  ASSERT_EQ(jint(doc, "backlog"), 0);
  ASSERT(jstr(doc, "lockedBy") == NULL);
  ASSERT_STR_EQ(jstr(doc, "state"), "{\"n\":5}");
  ASSERT(is_rfc3339_ms(jstr(doc, "lastModifiedAt")));
  json_object_put(doc);
  ctl_res_free(&r);

  /* Unknown: exit 3, said to be an entity. */
  r = CTL(h.addr, "--json", "entity", "show", "@counter@none");
  ASSERT_EXIT(r, 3);
  doc = ctl_doc(&r);
  ASSERT_STR_EQ(jerror_code(doc), "NOT_FOUND");
  json_object_put(doc);
  ASSERT_STR_CONTAINS(r.err, "entity '@counter@none' not found");
  ctl_res_free(&r);
  hub_stop(&h);
  return 0;
}

/* The ids of an entity list document, comma-joined in the order printed (caller frees). */
static char *entity_ids(json_object *doc)
{
  json_object *arr = jget(doc, "entities");
  ASSERT(arr != NULL);
  size_t n = json_object_array_length(arr);
  ASSERT_EQ(jint(doc, "count"), (int64_t)n);
  char *s = calloc(1, 1024);
  for (size_t i = 0; i < n; i++) {
    if (i)
      strcat(s, ",");
    strcat(s, jstr(json_object_array_get_idx(arr, i), "entityId"));
  }
  return s;
}

TEST_IMPL(ctl_entity_list_clean)
{
  hub h;
  int rc = hub_start(&h, false);
  if (rc)
    return rc;
  /* One with state (@acc@s), four transient (@acc@t0..t3), one of another name. */
  th_client *raw = th_client_open(h.srv.port);
  GetWorkItemsRequest req = GET_WORK_ITEMS_REQUEST__INIT;
  req.maxconcurrententityworkitems = 4;
  th_stream *w = th_work_open(raw, &req);
  ASSERT_OK(dt_client_signal_entity(h.c, "@acc@s", "set", "7", 0));
  run_batch(raw, w, "@acc@s", 1, "7");
  th_stream_free(w);
  th_client_close(raw);
  char id[32];
  for (int i = 0; i < 4; i++) {
    snprintf(id, sizeof id, "@acc@t%d", i);
    ASSERT_OK(dt_client_signal_entity(h.c, id, "set", NULL, 0));
  }
  ASSERT_OK(dt_client_signal_entity(h.c, "@zed@z", "set", NULL, 0));

  /* Default: only those with state. */
  ctl_res r = CTL(h.addr, "entity", "list");
  ASSERT_EXIT(r, 0);
  ASSERT_STR_CONTAINS(r.out, "ENTITY ID");
  ASSERT_EQ(count_lines(r.out, "@acc@"), 1);
  char *l = line_with(r.out, "@acc@s");
  ASSERT(l != NULL);
  ASSERT_STR_CONTAINS(l, " state ");
  free(l);
  ctl_res_free(&r);

  /* --transient --state, by prefix (any case of the name). */
  r = CTL(h.addr, "entity", "list", "--transient", "--state", "--prefix", "@ACC@");
  ASSERT_EXIT(r, 0);
  ASSERT_EQ(count_lines(r.out, "@acc@"), 5);
  ASSERT_EQ(count_lines(r.out, "transient"), 4);
  ASSERT_STR_CONTAINS(r.out, "    state: 7\n");
  ASSERT(!strstr(r.out, "@zed@"));
  ctl_res_free(&r);

  /* --limit: the first N in id order, saying more exist (JSON: more). */
  r = CTL(h.addr, "--json", "entity", "list", "--transient", "--limit", "2");
  ASSERT_EXIT(r, 0);
  json_object *doc = ctl_doc(&r);
  char *ids = entity_ids(doc);
  ASSERT_STR_EQ(ids, "@acc@s,@acc@t0");
  ASSERT(json_object_get_boolean(jget(doc, "more")));
  ASSERT(jget(doc, "continuationToken") == NULL);
  free(ids);
  json_object_put(doc);
  ctl_res_free(&r);
  r = CTL(h.addr, "--json", "entity", "list", "--transient", "--all");
  ASSERT_EXIT(r, 0);
  doc = ctl_doc(&r);
  ids = entity_ids(doc);
  ASSERT_STR_EQ(ids, "@acc@s,@acc@t0,@acc@t1,@acc@t2,@acc@t3,@zed@z");
  ASSERT(!json_object_get_boolean(jget(doc, "more")));
  free(ids);
  json_object_put(doc);
  ctl_res_free(&r);

  /* Pages of two, followed by their tokens: every entity once, in order. */
  char all[1024] = "", token[256] = "";
  for (int pages = 0;; pages++) {
    ASSERT_LT(pages, 10);
    r = token[0] ? CTL(h.addr, "--json", "entity", "list", "--transient", "--page-size", "2", "--continuation",
                       token)
                 : CTL(h.addr, "--json", "entity", "list", "--transient", "--page-size", "2");
    ASSERT_EXIT(r, 0);
    doc = ctl_doc(&r);
    ids = entity_ids(doc);
    ASSERT_LE(jint(doc, "count"), 2);
    if (ids[0])
      snprintf(all + strlen(all), sizeof all - strlen(all), "%s%s", all[0] ? "," : "", ids);
    free(ids);
    const char *t = jstr(doc, "continuationToken");
    snprintf(token, sizeof token, "%s", t ? t : "");
    json_object_put(doc);
    ctl_res_free(&r);
    if (!token[0])
      break;
  }
  ASSERT_STR_EQ(all, "@acc@s,@acc@t0,@acc@t1,@acc@t2,@acc@t3,@zed@z");
  r = CTL(h.addr, "entity", "list", "--transient", "--page-size", "2");
  ASSERT_EXIT(r, 0);
  ASSERT_STR_CONTAINS(r.out, "more entities: continue with --continuation @acc@t0");
  ctl_res_free(&r);

  /* clean: both by default; nothing here is empty or locked, so nothing changes. */
  r = CTL(h.addr, "entity", "clean");
  ASSERT_EXIT(r, 0);
  ASSERT_STR_CONTAINS(r.out, "removed 0 empty entities, released 0 orphaned locks");
  ctl_res_free(&r);
  r = CTL(h.addr, "--json", "entity", "clean", "--remove-empty");
  ASSERT_EXIT(r, 0);
  doc = ctl_doc(&r);
  ASSERT(json_object_get_boolean(jget(doc, "removeEmpty")));
  ASSERT(!json_object_get_boolean(jget(doc, "releaseOrphanedLocks")));
  ASSERT_EQ(jint(doc, "emptyEntitiesRemoved"), 0);
  ASSERT_EQ(jint(doc, "orphanedLocksReleased"), 0);
  ASSERT(json_object_get_boolean(jget(doc, "complete")));
  json_object_put(doc);
  ctl_res_free(&r);
  dt_entity_page *p = NULL;
  ASSERT_OK(dt_client_query_entities(h.c, &(dt_entity_query){.include_transient = true}, &p));
  ASSERT_EQ(p->n, 6);
  dt_entity_page_free(p);
  hub_stop(&h);
  return 0;
}
