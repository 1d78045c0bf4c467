/* C SDK fault tests (test_fault.c): failures injected into getrandom, open, pthread_create, grpc_call_start_batch
 * and protobuf_c_message_unpack (see fault.h); the worker tests start their own taskhubd ($TASKHUBD_BIN). */
TEST_ENTRY(sdk_fault_worker_stop_after_failed_batch)
TEST_ENTRY(sdk_fault_worker_start_stream_thread_fails)
TEST_ENTRY(sdk_fault_worker_start_pool_thread_fails)
TEST_ENTRY(sdk_fault_history_fetch_fails_abandons)
TEST_ENTRY(sdk_fault_random_rewind_getrandom_eintr)
TEST_ENTRY(sdk_fault_random_rewind_no_source)
TEST_ENTRY(sdk_fault_random_client_getrandom_eintr)
TEST_ENTRY(sdk_fault_random_client_no_source)
