/* C SDK fault tests (test_fault.c): failures injected into getrandom, open, pthread_create and
 * grpc_call_start_batch (see fault.h); the worker tests start their own taskhubd ($TASKHUBD_BIN). */
TEST_ENTRY(sdk_fault_worker_stop_after_failed_batch)
TEST_ENTRY(sdk_fault_worker_start_stream_thread_fails)
TEST_ENTRY(sdk_fault_worker_start_pool_thread_fails)
TEST_ENTRY(sdk_fault_random_rewind_getrandom_eintr)
TEST_ENTRY(sdk_fault_random_rewind_no_source)
TEST_ENTRY(sdk_fault_random_client_getrandom_eintr)
TEST_ENTRY(sdk_fault_random_client_no_source)
