package io.taskhubd.interop;

import static io.taskhubd.interop.Env.expectDone;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.microsoft.durabletask.NewOrchestrationInstanceOptions;
import com.microsoft.durabletask.OrchestrationMetadata;
import com.microsoft.durabletask.OrchestrationRuntimeStatus;
import com.microsoft.durabletask.OrchestrationStatusQuery;
import com.microsoft.durabletask.OrchestrationStatusQueryResult;
import com.microsoft.durabletask.PurgeInstanceCriteria;
import com.microsoft.durabletask.PurgeResult;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeoutException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.Timeout;

/** Scenario 7: terminate, suspend/resume, purge, query, restart. */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@Timeout(120)
class ManagementTest {
    final Map<String, Integer> helloRuns = new ConcurrentHashMap<>();
    Env env;

    @BeforeAll
    void start() throws Exception {
        env = new Env("management", r -> r
                .activity("Hello", ctx -> {
                    String name = ctx.getInput(String.class);
                    helloRuns.merge(name, 1, Integer::sum);
                    return "Hello, " + name + "!";
                })
                .orchestration("HelloOrch", ctx ->
                        ctx.complete(ctx.callActivity("Hello", ctx.getInput(String.class), String.class).await()))
                .orchestration("WaitForever", ctx ->
                        ctx.complete("got " + ctx.waitForExternalEvent("go", String.class).await())));
    }

    @AfterAll
    void stop() throws Exception {
        if (env != null) {
            env.close();
        }
    }

    String schedule(String name, Object input, String id) {
        return env.client.scheduleNewOrchestrationInstance(name,
                new NewOrchestrationInstanceOptions().setInput(input).setInstanceId(id));
    }

    @Test
    void terminate() {
        String id = schedule("WaitForever", null, "java-terminate");
        env.waitStarted(id);
        env.client.terminate(id, "stopped by the test");
        OrchestrationMetadata md = env.waitDone(id);
        expectDone(md, OrchestrationRuntimeStatus.TERMINATED, "\"stopped by the test\"");
    }

    @Test
    void suspendAndResume() throws Exception {
        String id = schedule("WaitForever", null, "java-suspend");
        env.waitStarted(id);
        env.client.suspendInstance(id, "pause for the test");
        env.waitStatus(id, OrchestrationRuntimeStatus.SUSPENDED);
        env.client.raiseEvent(id, "go", "after resume");
        // A bounded check that the event does not end a suspended orchestration (not a synchronisation).
        assertThrows(TimeoutException.class, () -> env.client.waitForInstanceCompletion(id, Duration.ofMillis(500), true),
                "a suspended orchestration completed");
        assertEquals(OrchestrationRuntimeStatus.SUSPENDED, env.client.getInstanceMetadata(id, false).getRuntimeStatus());
        env.client.resumeInstance(id, "go on");
        expectDone(env.waitDone(id), OrchestrationRuntimeStatus.COMPLETED, "\"got after resume\"");
    }

    @Test
    void purge() throws Exception {
        String id = schedule("HelloOrch", "purge-1", "java-purge-1");
        expectDone(env.waitDone(id), OrchestrationRuntimeStatus.COMPLETED, "\"Hello, purge-1!\"");
        PurgeResult r = env.client.purgeInstance(id);
        assertEquals(1, r.getDeletedInstanceCount());
        assertFalse(env.client.getInstanceMetadata(id, false).isInstanceFound(), "purged instance still found");
        assertEquals(0, env.client.purgeInstance(id).getDeletedInstanceCount(), "purging it again");

        // by filter: the completed ones created in this window go, the running one stays
        Instant from = Instant.now();
        List<String> done = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            done.add(schedule("HelloOrch", "pf-" + i, "java-purge-filter-" + i));
        }
        String live = schedule("WaitForever", null, "java-purge-filter-live");
        for (String d : done) {
            assertEquals(OrchestrationRuntimeStatus.COMPLETED, env.waitDone(d).getRuntimeStatus());
        }
        env.waitStarted(live);
        Instant to = Instant.now();
        PurgeResult byFilter = env.client.purgeInstances(new PurgeInstanceCriteria()
                .setCreatedTimeFrom(from)
                .setCreatedTimeTo(to)
                .setRuntimeStatusList(List.of(OrchestrationRuntimeStatus.COMPLETED))
                .setTimeout(Duration.ofSeconds(30)));
        assertEquals(3, byFilter.getDeletedInstanceCount());
        for (String d : done) {
            assertFalse(env.client.getInstanceMetadata(d, false).isInstanceFound(), d + " still found");
        }
        assertTrue(env.client.getInstanceMetadata(live, false).isInstanceFound(), "the running instance was purged");
        env.client.terminate(live, null);
        assertEquals(OrchestrationRuntimeStatus.TERMINATED, env.waitDone(live).getRuntimeStatus());
    }

    static Set<String> ids(OrchestrationStatusQueryResult r) {
        Set<String> s = new TreeSet<>();
        for (OrchestrationMetadata m : r.getOrchestrationState()) {
            s.add(m.getInstanceId());
        }
        return s;
    }

    @Test
    void query() {
        for (int i = 0; i < 3; i++) {
            schedule("HelloOrch", "q" + i, "java-query-" + i);
        }
        String live = schedule("WaitForever", null, "java-query-live");
        for (int i = 0; i < 3; i++) {
            env.waitDone("java-query-" + i);
        }
        env.waitStarted(live);

        OrchestrationStatusQueryResult completed = env.client.queryInstances(new OrchestrationStatusQuery()
                .setInstanceIdPrefix("java-query-")
                .setRuntimeStatusList(List.of(OrchestrationRuntimeStatus.COMPLETED))
                .setFetchInputsAndOutputs(true));
        assertEquals(Set.of("java-query-0", "java-query-1", "java-query-2"), ids(completed));
        for (OrchestrationMetadata m : completed.getOrchestrationState()) {
            String n = m.getInstanceId().substring("java-query-".length());
            assertEquals("HelloOrch", m.getName());
            assertEquals("\"q" + n + "\"", m.getSerializedInput());
            assertEquals("\"Hello, q" + n + "!\"", m.getSerializedOutput());
        }

        OrchestrationStatusQueryResult running = env.client.queryInstances(new OrchestrationStatusQuery()
                .setInstanceIdPrefix("java-query-")
                .setRuntimeStatusList(List.of(OrchestrationRuntimeStatus.RUNNING, OrchestrationRuntimeStatus.PENDING)));
        assertEquals(Set.of(live), ids(running));

        // all four, two a page
        Set<String> paged = new TreeSet<>();
        String token = null;
        int pages = 0;
        do {
            OrchestrationStatusQueryResult page = env.client.queryInstances(new OrchestrationStatusQuery()
                    .setInstanceIdPrefix("java-query-")
                    .setMaxInstanceCount(2)
                    .setContinuationToken(token));
            assertTrue(page.getOrchestrationState().size() <= 2, "page larger than maxInstanceCount");
            for (String s : ids(page)) {
                assertTrue(paged.add(s), s + " on two pages");
            }
            token = page.getContinuationToken();
            pages++;
            assertTrue(pages <= 4, "paging does not end");
        } while (token != null && !token.isEmpty());
        assertEquals(Set.of("java-query-0", "java-query-1", "java-query-2", live), paged);

        OrchestrationStatusQueryResult none = env.client.queryInstances(new OrchestrationStatusQuery()
                .setInstanceIdPrefix("java-query-")
                .setCreatedTimeFrom(Instant.now().plusSeconds(3600)));
        assertEquals(Set.of(), ids(none), "created in the future");

        env.client.terminate(live, null);
        env.waitDone(live);
    }

    @Test
    void restartWithTheSameId() {
        String id = schedule("HelloOrch", "restart-same", "java-restart");
        OrchestrationMetadata first = env.waitDone(id);
        expectDone(first, OrchestrationRuntimeStatus.COMPLETED, "\"Hello, restart-same!\"");
        String firstExec = TurnRecorder.executionId(env.turns.turns(id).get(0));

        // taskhubd replaces a finished instance when StartInstance carries no reuse policy (docs/protocol-choices.md)
        String again = env.client.restartInstance(id, false);
        assertEquals(id, again);
        OrchestrationMetadata second = env.waitDone(id);
        expectDone(second, OrchestrationRuntimeStatus.COMPLETED, "\"Hello, restart-same!\"");
        assertEquals("\"restart-same\"", second.getSerializedInput(), "the original input");
        assertEquals("HelloOrch", second.getName());
        assertFalse(second.getCreatedAt().isBefore(first.getCreatedAt()), "createdAt");
        assertEquals(2, helloRuns.get("restart-same"), "the activity ran again");
        String secondExec = TurnRecorder.executionId(env.turns.turns(id).get(env.turns.turns(id).size() - 1));
        assertNotEquals(firstExec, secondExec, "a new execution id");
        assertEquals(2, env.turns.lastExecutionTurns(id).size(), "the new execution's turns");
        assertEquals(0, env.turns.lastExecutionTurns(id).get(0).request.getPastEventsCount(),
                "the new execution starts with an empty history");
    }

    @Test
    void restartOfARunningInstanceIsRefused() {
        String id = schedule("WaitForever", null, "java-restart-live");
        env.waitStarted(id);
        StatusRuntimeException e = assertThrows(StatusRuntimeException.class,
                () -> env.client.restartInstance(id, false));
        assertEquals(Status.Code.ALREADY_EXISTS, e.getStatus().getCode(), e.toString());
        env.client.raiseEvent(id, "go", "anyway");
        expectDone(env.waitDone(id), OrchestrationRuntimeStatus.COMPLETED, "\"got anyway\"");
    }

    @Test
    void restartWithANewId() {
        String id = schedule("HelloOrch", "restart-new", "java-restart-new");
        OrchestrationMetadata first = env.waitDone(id);
        expectDone(first, OrchestrationRuntimeStatus.COMPLETED, "\"Hello, restart-new!\"");

        String other = env.client.restartInstance(id, true);
        assertNotEquals(id, other);
        OrchestrationMetadata second = env.waitDone(other);
        expectDone(second, OrchestrationRuntimeStatus.COMPLETED, "\"Hello, restart-new!\"");
        assertEquals("\"restart-new\"", second.getSerializedInput());
        assertEquals(2, helloRuns.get("restart-new"));

        OrchestrationMetadata original = env.client.getInstanceMetadata(id, true);
        expectDone(original, OrchestrationRuntimeStatus.COMPLETED, "\"Hello, restart-new!\"");
        assertEquals(first.getCreatedAt(), original.getCreatedAt(), "the original instance is untouched");
    }
}
