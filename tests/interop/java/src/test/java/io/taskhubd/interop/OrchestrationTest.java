package io.taskhubd.interop;

import static io.taskhubd.interop.Env.expectDone;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.microsoft.durabletask.FailureDetails;
import com.microsoft.durabletask.NewOrchestrationInstanceOptions;
import com.microsoft.durabletask.OrchestrationMetadata;
import com.microsoft.durabletask.OrchestrationRuntimeStatus;
import com.microsoft.durabletask.Task;
import com.microsoft.durabletask.TaskCanceledException;
import com.microsoft.durabletask.TaskFailedException;
import com.microsoft.durabletask.implementation.protobuf.OrchestratorService.HistoryEvent;
import com.microsoft.durabletask.implementation.protobuf.OrchestratorService.OrchestratorAction;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.Timeout;

/** Scenarios 1-3 and 6: activities, chaining, fan-out/fan-in, sub-orchestrations, external events, failures. */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@Timeout(120)
class OrchestrationTest {
    static final int CHAIN_STEPS = 5;
    static final int FAN_OUT = 10;

    Env env;

    @BeforeAll
    void start() throws Exception {
        env = new Env("orchestrations", r -> r
                .activity("Hello", ctx -> "Hello, " + ctx.getInput(String.class) + "!")
                // "c0" -> "c0/1" -> "c0/1/2" ...: each step appends its position, so order and count both show
                .activity("Append", ctx -> {
                    String s = ctx.getInput(String.class);
                    return s + "/" + (s.chars().filter(c -> c == '/').count() + 1);
                })
                .activity("Square", ctx -> {
                    int n = ctx.getInput(Integer.class);
                    return n * n;
                })
                .activity("Fail", ctx -> {
                    throw new IllegalStateException("boom: " + ctx.getInput(String.class));
                })
                .orchestration("HelloOrch", ctx ->
                        ctx.complete(ctx.callActivity("Hello", ctx.getInput(String.class), String.class).await()))
                .orchestration("Chain", ctx -> {
                    String v = ctx.getInput(String.class);
                    for (int i = 0; i < CHAIN_STEPS; i++) {
                        v = ctx.callActivity("Append", v, String.class).await();
                    }
                    ctx.complete(v);
                })
                .orchestration("FanOut", ctx -> {
                    int n = ctx.getInput(Integer.class);
                    List<Task<Integer>> tasks = new ArrayList<>();
                    for (int i = 0; i < n; i++) {
                        tasks.add(ctx.callActivity("Square", i, Integer.class));
                    }
                    List<Integer> squares = ctx.allOf(tasks).await();
                    ctx.complete(squares.stream().mapToInt(Integer::intValue).sum());
                })
                .orchestration("Parent", ctx -> {
                    String child = ctx.callSubOrchestrator("HelloOrch", ctx.getInput(String.class),
                            ctx.getInstanceId() + "-child", String.class).await();
                    ctx.complete("parent got " + child);
                })
                .orchestration("WaitApproval", ctx -> {
                    int seconds = ctx.getInput(Integer.class);
                    try {
                        String v = ctx.waitForExternalEvent("approval", Duration.ofSeconds(seconds), String.class)
                                .await();
                        ctx.complete("approved: " + v);
                    } catch (TaskCanceledException e) {
                        ctx.complete("timed out");
                    }
                })
                .orchestration("FailUncaught", ctx -> {
                    ctx.callActivity("Fail", ctx.getInput(String.class), String.class).await();
                    ctx.complete("unreachable");
                })
                .orchestration("FailCaught", ctx -> {
                    try {
                        ctx.callActivity("Fail", ctx.getInput(String.class), String.class).await();
                        ctx.complete("unreachable");
                    } catch (TaskFailedException e) {
                        FailureDetails d = e.getErrorDetails();
                        ctx.complete(e.getTaskName() + "#" + e.getTaskId() + " " + d.getErrorType() + ": "
                                + d.getErrorMessage());
                    }
                })
                .orchestration("Throw", ctx -> {
                    throw new IllegalArgumentException("orchestrator says no to " + ctx.getInput(String.class));
                }));
    }

    @AfterAll
    void stop() throws Exception {
        if (env != null) {
            env.close();
        }
    }

    String schedule(String name, Object input, String id) {
        String got = env.client.scheduleNewOrchestrationInstance(name,
                new NewOrchestrationInstanceOptions().setInput(input).setInstanceId(id));
        assertEquals(id, got, "scheduleNewOrchestrationInstance returns the id it was given");
        return got;
    }

    static List<HistoryEvent> ofCase(List<HistoryEvent> h, HistoryEvent.EventTypeCase c) {
        return h.stream().filter(e -> e.getEventTypeCase() == c).collect(Collectors.toList());
    }

    static long turnsIn(List<HistoryEvent> h) {
        return ofCase(h, HistoryEvent.EventTypeCase.ORCHESTRATORSTARTED).size();
    }

    @Test
    void hello() {
        Instant before = Instant.now();
        String id = schedule("HelloOrch", "World", "java-hello");
        OrchestrationMetadata md = env.waitDone(id);
        expectDone(md, OrchestrationRuntimeStatus.COMPLETED, "\"Hello, World!\"");
        assertEquals("HelloOrch", md.getName());
        assertEquals("\"World\"", md.getSerializedInput());
        assertEquals("Hello, World!", md.readOutputAs(String.class));
        assertFalse(md.getCreatedAt().isBefore(before.minusSeconds(1)), "createdAt " + md.getCreatedAt());
        assertFalse(md.getLastUpdatedAt().isBefore(md.getCreatedAt()), "lastUpdatedAt before createdAt");

        List<HistoryEvent> h = env.history(id);
        HistoryEvent started = ofCase(h, HistoryEvent.EventTypeCase.EXECUTIONSTARTED).get(0);
        assertEquals("HelloOrch", started.getExecutionStarted().getName());
        assertEquals("\"World\"", started.getExecutionStarted().getInput().getValue());
        List<HistoryEvent> scheduled = ofCase(h, HistoryEvent.EventTypeCase.TASKSCHEDULED);
        assertEquals(1, scheduled.size());
        assertEquals("Hello", scheduled.get(0).getTaskScheduled().getName());
        assertEquals(0, scheduled.get(0).getEventId());
        List<HistoryEvent> completed = ofCase(h, HistoryEvent.EventTypeCase.TASKCOMPLETED);
        assertEquals(1, completed.size());
        assertEquals(0, completed.get(0).getTaskCompleted().getTaskScheduledId());
        assertEquals("\"Hello, World!\"", completed.get(0).getTaskCompleted().getResult().getValue());
        assertEquals(2, turnsIn(h), "turns: start -> activity scheduled, activity done -> complete");
        assertEquals(2, env.turns.turns(id).size(), "work items the worker received");
    }

    @Test
    void chaining() {
        String id = schedule("Chain", "c0", "java-chain");
        expectDone(env.waitDone(id), OrchestrationRuntimeStatus.COMPLETED, "\"c0/1/2/3/4/5\"");
        List<HistoryEvent> h = env.history(id);
        List<HistoryEvent> scheduled = ofCase(h, HistoryEvent.EventTypeCase.TASKSCHEDULED);
        assertEquals(CHAIN_STEPS, scheduled.size());
        for (int i = 0; i < CHAIN_STEPS; i++) {
            assertEquals(i, scheduled.get(i).getEventId(), "task ids count up from 0");
        }
        assertEquals(CHAIN_STEPS + 1, turnsIn(h));
    }

    @Test
    void fanOutFanIn() {
        String id = schedule("FanOut", FAN_OUT, "java-fanout");
        int want = 0;
        for (int i = 0; i < FAN_OUT; i++) {
            want += i * i;
        }
        expectDone(env.waitDone(id), OrchestrationRuntimeStatus.COMPLETED, Integer.toString(want));
        List<HistoryEvent> h = env.history(id);
        assertEquals(FAN_OUT, ofCase(h, HistoryEvent.EventTypeCase.TASKSCHEDULED).size());
        assertEquals(FAN_OUT, ofCase(h, HistoryEvent.EventTypeCase.TASKCOMPLETED).size());
        // the first turn scheduled all of them at once
        List<TurnRecorder.Turn> turns = env.turns.turns(id);
        long firstTurnSchedules = turns.get(0).response.getActionsList().stream()
                .filter(OrchestratorAction::hasScheduleTask).count();
        assertEquals(FAN_OUT, firstTurnSchedules, "activities scheduled by the first turn");
    }

    @Test
    void subOrchestration() {
        String id = schedule("Parent", "Sub", "java-parent");
        expectDone(env.waitDone(id), OrchestrationRuntimeStatus.COMPLETED, "\"parent got Hello, Sub!\"");
        String childId = id + "-child";
        OrchestrationMetadata child = env.client.getInstanceMetadata(childId, true);
        assertTrue(child.isInstanceFound(), "the child instance exists");
        expectDone(child, OrchestrationRuntimeStatus.COMPLETED, "\"Hello, Sub!\"");
        assertEquals("HelloOrch", child.getName());

        List<HistoryEvent> h = env.history(id);
        List<HistoryEvent> created = ofCase(h, HistoryEvent.EventTypeCase.SUBORCHESTRATIONINSTANCECREATED);
        assertEquals(1, created.size());
        assertEquals(childId, created.get(0).getSubOrchestrationInstanceCreated().getInstanceId());
        assertEquals("HelloOrch", created.get(0).getSubOrchestrationInstanceCreated().getName());
        List<HistoryEvent> done = ofCase(h, HistoryEvent.EventTypeCase.SUBORCHESTRATIONINSTANCECOMPLETED);
        assertEquals(1, done.size());
        assertEquals(created.get(0).getEventId(), done.get(0).getSubOrchestrationInstanceCompleted().getTaskScheduledId());
        assertEquals("\"Hello, Sub!\"", done.get(0).getSubOrchestrationInstanceCompleted().getResult().getValue());

        HistoryEvent childStart = ofCase(env.history(childId), HistoryEvent.EventTypeCase.EXECUTIONSTARTED).get(0);
        assertEquals(id, childStart.getExecutionStarted().getParentInstance().getOrchestrationInstance().getInstanceId(),
                "the child's ExecutionStarted names its parent");
    }

    @Test
    void externalEventReceived() {
        String id = schedule("WaitApproval", 30, "java-event");
        env.waitStarted(id);
        env.client.raiseEvent(id, "approval", "yes");
        expectDone(env.waitDone(id), OrchestrationRuntimeStatus.COMPLETED, "\"approved: yes\"");
        List<HistoryEvent> raised = ofCase(env.history(id), HistoryEvent.EventTypeCase.EVENTRAISED);
        assertEquals(1, raised.size());
        assertEquals("approval", raised.get(0).getEventRaised().getName());
        assertEquals("\"yes\"", raised.get(0).getEventRaised().getInput().getValue());
    }

    @Test
    void externalEventTimesOut() {
        long t0 = System.nanoTime();
        String id = schedule("WaitApproval", 1, "java-event-timeout");
        expectDone(env.waitDone(id), OrchestrationRuntimeStatus.COMPLETED, "\"timed out\"");
        assertTrue(System.nanoTime() - t0 >= Duration.ofSeconds(1).toNanos(), "finished before its 1 s timeout");
        List<HistoryEvent> h = env.history(id);
        assertEquals(0, ofCase(h, HistoryEvent.EventTypeCase.EVENTRAISED).size());
        List<HistoryEvent> timers = ofCase(h, HistoryEvent.EventTypeCase.TIMERCREATED);
        assertEquals(1, timers.size(), "the timeout's timer");
        List<HistoryEvent> fired = ofCase(h, HistoryEvent.EventTypeCase.TIMERFIRED);
        assertEquals(1, fired.size());
        assertEquals(timers.get(0).getEventId(), fired.get(0).getTimerFired().getTimerId());
        assertEquals(2, turnsIn(h), "turns: start -> timer, timer fired -> complete");
    }

    @Test
    void activityFailureFailsTheOrchestration() {
        String id = schedule("FailUncaught", "x1", "java-fail");
        OrchestrationMetadata md = env.waitDone(id);
        assertEquals(OrchestrationRuntimeStatus.FAILED, md.getRuntimeStatus());
        FailureDetails d = md.getFailureDetails();
        assertEquals(TaskFailedException.class.getName(), d.getErrorType(), "the orchestrator's own exception");
        assertTrue(d.getErrorMessage().contains("Task 'Fail' (#0) failed"), d.getErrorMessage());
        assertTrue(d.getErrorMessage().contains("boom: x1"), d.getErrorMessage());
        assertTrue(d.getStackTrace() != null && d.getStackTrace().contains("OrchestrationTest"),
                "the orchestrator's stack trace: " + d.getStackTrace());
        assertTrue(d.isCausedBy(TaskFailedException.class));

        List<HistoryEvent> failed = ofCase(env.history(id), HistoryEvent.EventTypeCase.TASKFAILED);
        assertEquals(1, failed.size());
        assertEquals(0, failed.get(0).getTaskFailed().getTaskScheduledId());
        assertEquals("java.lang.IllegalStateException", failed.get(0).getTaskFailed().getFailureDetails().getErrorType());
        assertEquals("boom: x1", failed.get(0).getTaskFailed().getFailureDetails().getErrorMessage());
    }

    @Test
    void activityFailureCaughtByTheOrchestrator() {
        String id = schedule("FailCaught", "x2", "java-fail-caught");
        expectDone(env.waitDone(id), OrchestrationRuntimeStatus.COMPLETED,
                "\"Fail#0 java.lang.IllegalStateException: boom: x2\"");
    }

    @Test
    void orchestratorException() {
        String id = schedule("Throw", "x3", "java-throw");
        OrchestrationMetadata md = env.waitDone(id);
        assertEquals(OrchestrationRuntimeStatus.FAILED, md.getRuntimeStatus());
        assertEquals("java.lang.IllegalArgumentException", md.getFailureDetails().getErrorType());
        assertEquals("orchestrator says no to x3", md.getFailureDetails().getErrorMessage());
        assertTrue(md.getFailureDetails().isCausedBy(IllegalArgumentException.class));
    }
}
