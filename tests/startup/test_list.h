/* Start-up: taskhubd refuses what it cannot do at once, with one clear line and a non-zero exit. */
TEST_ENTRY(second_server_on_used_port_exits)
TEST_ENTRY(second_server_on_used_unix_socket_exits)
TEST_ENTRY(address_without_port_refused)
TEST_ENTRY(ops_port_in_use_names_the_cause)
TEST_ENTRY(clean_start_log)
TEST_ENTRY(data_dir_parents_created)
TEST_ENTRY(data_dir_removed_while_running_exits)
