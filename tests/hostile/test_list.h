/* Hostile and heavy input (issue 13): each test starts its own taskhubd and plays a client or worker no SDK
 * would be. */
TEST_ENTRY(hostile_nested_failure_is_refused)
TEST_ENTRY(hostile_nested_value_is_refused)
TEST_ENTRY(hostile_timestamps_out_of_range)
TEST_ENTRY(hostile_text_must_be_utf8)
TEST_ENTRY(hostile_reads_pathological_query_does_not_stall)
TEST_ENTRY(hostile_reads_woken_waiters_do_not_hold_the_engine)
TEST_ENTRY(hostile_reads_history_stream_holds_little_for_idle_readers)
TEST_ENTRY(hostile_reads_history_replaced_while_streamed)
TEST_ENTRY(hostile_reads_query_pages_fit_the_send_limit)
