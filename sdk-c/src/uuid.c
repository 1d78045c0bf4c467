/* Name-based (version 5, SHA-1) UUIDs, as RFC 4122 defines them; the other SDKs derive replay-safe ids this way. */
#include "internal.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

static void uuid5(const unsigned char ns[16], const char *name, unsigned char out[16])
{
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  EVP_DigestInit_ex(c, EVP_sha1(), NULL);
  EVP_DigestUpdate(c, ns, 16);
  EVP_DigestUpdate(c, name, strlen(name));
  EVP_DigestFinal_ex(c, md, &mdlen);
  EVP_MD_CTX_free(c);
  memcpy(out, md, 16);
  out[6] = (unsigned char)((out[6] & 0x0f) | 0x50);
  out[8] = (unsigned char)((out[8] & 0x3f) | 0x80);
}

void dt__uuid5_string(const char *name, char out[37])
{
  /* The namespace: uuid5(NAMESPACE_OID, "9e952958-5e33-4daf-827f-2fa12937b875"), shared with Python and JS. */
  static const unsigned char oid[16] = {0x6b, 0xa7, 0xb8, 0x12, 0x9d, 0xad, 0x11, 0xd1,
                                        0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8};
  unsigned char ns[16], u[16];
  uuid5(oid, "9e952958-5e33-4daf-827f-2fa12937b875", ns);
  uuid5(ns, name, u);
  snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2], u[3],
           u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
}
