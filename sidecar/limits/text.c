/* Value checks of the limits layer: ids, names, payloads, tags, failures. */
#include "limits.h"

#include "common/utf8.h"

#include <stdio.h>
#include <string.h>

bool sc_check_text(const char *field, const char *v, size_t max, bool required, struct sc_err *err)
{
  size_t n = strlen(v);
  if (required && n == 0) {
    sc_err_set(err, SC_EINVAL, "%s: must not be empty", field);
    return false;
  }
  if (n > max) {
    sc_err_set(err, SC_EINVAL, "%s: %zu bytes is longer than the %zu-byte limit", field, n, max);
    return false;
  }
  for (size_t i = 0; i < n; i++) {
    unsigned char b = (unsigned char)v[i];
    if (b < 0x20 || b == 0x7f) {
      sc_err_set(err, SC_EINVAL, "%s: contains control character 0x%02x at byte %zu", field, b, i);
      return false;
    }
  }
  size_t bad = sc_utf8_invalid_at((const unsigned char *)v, n);
  if (bad) {
    sc_err_set(err, SC_EINVAL, "%s: is not valid UTF-8 (byte %zu)", field, bad - 1);
    return false;
  }
  return true;
}

bool sc_check_id(const struct sc_limits *l, const char *field, const char *v, struct sc_err *err)
{
  return sc_check_text(field, v, l->max_id, true, err);
}

bool sc_check_name(const struct sc_limits *l, const char *field, const char *v, bool required, struct sc_err *err)
{
  return sc_check_text(field, v, l->max_name, required, err);
}

bool sc_check_payload_len(const struct sc_limits *l, const char *field, size_t n, struct sc_err *err)
{
  if (n <= l->max_payload)
    return true;
  sc_err_set(err, SC_ETOOBIG, "%s: %zu bytes exceeds the %zu-byte payload limit (--max-payload)", field, n,
             l->max_payload);
  return false;
}

bool sc_check_payload(const struct sc_limits *l, const char *field, const char *v, struct sc_err *err)
{
  return !v || sc_check_payload_len(l, field, strlen(v), err);
}

/* Every generated map<string,string> entry has this layout; only the descriptors differ. */
struct kv {
  ProtobufCMessage base;
  char *key;
  char *value;
};

bool sc_check_tags(const struct sc_limits *l, const char *field, size_t n, void *const *entries, struct sc_err *err)
{
  size_t total = 0;
  for (size_t i = 0; i < n; i++) {
    const struct kv *t = entries[i];
    char what[64];
    snprintf(what, sizeof what, "%s key", field);
    if (!sc_check_text(what, t->key, l->max_name, true, err))
      return false;
    total += strlen(t->key) + strlen(t->value);
  }
  return sc_check_payload_len(l, field, total, err);
}

bool sc_check_failure(const struct sc_limits *l, const char *field, const TaskFailureDetails *f,
                      struct sc_err *err)
{
  return !f || sc_check_payload_len(l, field, task_failure_details__get_packed_size(f), err);
}
