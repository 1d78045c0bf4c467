/* Hostile and heavy input (issue 13): each test starts its own taskhubd and plays a client or worker no SDK
 * would be. */
TEST_ENTRY(hostile_nested_failure_is_refused)
TEST_ENTRY(hostile_nested_value_is_refused)
TEST_ENTRY(hostile_timestamps_out_of_range)
TEST_ENTRY(hostile_text_must_be_utf8)
