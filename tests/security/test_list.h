/* The C SDK and taskhubctl against a secured taskhubd (TLS, mutual TLS, bearer tokens). */
TEST_ENTRY(security_c_sdk_client)
TEST_ENTRY(security_c_sdk_worker)
TEST_ENTRY(security_taskhubctl)
