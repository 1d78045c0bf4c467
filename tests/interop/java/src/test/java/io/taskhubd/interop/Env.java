package io.taskhubd.interop;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.fail;

import com.microsoft.durabletask.DurableTaskClient;
import com.microsoft.durabletask.DurableTaskGrpcClientBuilder;
import com.microsoft.durabletask.DurableTaskGrpcWorker;
import com.microsoft.durabletask.DurableTaskGrpcWorkerBuilder;
import com.microsoft.durabletask.OrchestrationMetadata;
import com.microsoft.durabletask.OrchestrationRuntimeStatus;
import com.microsoft.durabletask.TaskActivity;
import com.microsoft.durabletask.TaskActivityFactory;
import com.microsoft.durabletask.TaskOrchestration;
import com.microsoft.durabletask.TaskOrchestrationFactory;
import com.microsoft.durabletask.implementation.protobuf.OrchestratorService.HistoryEvent;
import io.grpc.ClientInterceptors;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Consumer;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;

/**
 * One test class's taskhubd, a Java SDK worker (DurableTaskGrpcWorker) and a Java SDK client
 * (DurableTaskGrpcClient), each on its own connection as separate processes would be.
 *
 * <p>The 1.5.0 worker's start() runs an endless loop on a non-daemon thread it does not expose (after a broken
 * stream it sleeps 5 s and dials again, forever). So the worker runs startAndBlock() on a daemon thread of ours,
 * and close() shuts its channel and interrupts that thread, which ends the loop.
 */
final class Env implements AutoCloseable {
    static final Duration WAIT = Duration.ofSeconds(60);

    final Taskhubd server;
    final DurableTaskClient client;
    final TurnRecorder turns = new TurnRecorder();
    private final ManagedChannel workerChannel;
    private final ManagedChannel clientChannel;
    private final Thread workerThread;
    private final List<String> sdkProblems = new ArrayList<>();
    private final Handler sdkLog;
    private volatile Throwable workerDied;

    /** Registrations for the worker, plus its builder for other settings (maximumTimerInterval). */
    static final class Registry {
        final DurableTaskGrpcWorkerBuilder builder = new DurableTaskGrpcWorkerBuilder();

        Registry orchestration(String name, TaskOrchestration o) {
            builder.addOrchestration(new TaskOrchestrationFactory() {
                @Override
                public String getName() {
                    return name;
                }

                @Override
                public TaskOrchestration create() {
                    return o;
                }
            });
            return this;
        }

        Registry activity(String name, TaskActivity a) {
            builder.addActivity(new TaskActivityFactory() {
                @Override
                public String getName() {
                    return name;
                }

                @Override
                public TaskActivity create() {
                    return a;
                }
            });
            return this;
        }
    }

    Env(String name, Consumer<Registry> register) throws Exception {
        server = Taskhubd.start(name);

        // The SDK logs through java.util.logging. An unexpected stream failure or a dropped work item is a
        // warning there: the test fails on it (an orchestrator's own unhandled exception is expected in some tests).
        sdkLog = new Handler() {
            @Override
            public void publish(LogRecord r) {
                if (r.getLevel().intValue() < Level.WARNING.intValue()) {
                    return;
                }
                String msg = r.getMessage() == null ? "" : r.getMessage();
                if (msg.startsWith("The orchestrator failed with an unhandled exception")) {
                    return;
                }
                synchronized (sdkProblems) {
                    sdkProblems.add(r.getLevel() + " " + r.getLoggerName() + ": " + msg);
                }
            }

            @Override
            public void flush() {}

            @Override
            public void close() {}
        };
        Logger.getLogger("com.microsoft.durabletask").addHandler(sdkLog);

        workerChannel = dial();
        clientChannel = dial();
        Registry r = new Registry();
        register.accept(r);
        DurableTaskGrpcWorker worker = r.builder
                .grpcChannel(ClientInterceptors.intercept(workerChannel, turns))
                .build();
        workerThread = new Thread(worker::startAndBlock, "durabletask-worker-" + name);
        workerThread.setDaemon(true);
        workerThread.setUncaughtExceptionHandler((t, e) -> workerDied = e);
        workerThread.start();
        client = new DurableTaskGrpcClientBuilder().grpcChannel(clientChannel).build();
    }

    private ManagedChannel dial() {
        return ManagedChannelBuilder.forAddress("127.0.0.1", server.port)
                .usePlaintext()
                .proxyDetector(addr -> null) // never through a proxy configured in the environment
                .build();
    }

    /** Waits for a terminal state and returns it with inputs and outputs. */
    OrchestrationMetadata waitDone(String id) {
        try {
            OrchestrationMetadata md = client.waitForInstanceCompletion(id, WAIT, true);
            assertNotNull(md);
            return md;
        } catch (TimeoutException e) {
            throw new AssertionError(id + " did not finish within " + WAIT + "\n" + Taskhubd.tail(server.log, 80), e);
        }
    }

    /** Waits until the instance has left PENDING. */
    OrchestrationMetadata waitStarted(String id) {
        try {
            return client.waitForInstanceStart(id, WAIT, true);
        } catch (TimeoutException e) {
            throw new AssertionError(id + " did not start within " + WAIT, e);
        }
    }

    /**
     * Polls (10 ms apart, bounded by WAIT) until the instance shows the status, for states that only appear
     * after a turn or a command the server applies on its own time (SUSPENDED, RUNNING after a resume).
     */
    OrchestrationMetadata waitStatus(String id, OrchestrationRuntimeStatus want) throws InterruptedException {
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (true) {
            OrchestrationMetadata md = client.getInstanceMetadata(id, true);
            if (md.isInstanceFound() && md.getRuntimeStatus() == want) {
                return md;
            }
            if (md.isInstanceFound() && md.isCompleted()) {
                fail(id + ": waiting for " + want + " but it ended " + md.getRuntimeStatus() + " with output "
                        + md.getSerializedOutput());
            }
            if (System.nanoTime() > deadline) {
                fail(id + ": still " + (md.isInstanceFound() ? md.getRuntimeStatus() : "not found") + " after "
                        + WAIT + ", never " + want);
            }
            TimeUnit.MILLISECONDS.sleep(10);
        }
    }

    static void expectDone(OrchestrationMetadata md, OrchestrationRuntimeStatus status, String output) {
        assertEquals(status, md.getRuntimeStatus(), () -> md.getInstanceId() + ": output " + md.getSerializedOutput()
                + ", failure " + md.getFailureDetails().getErrorType() + ": " + md.getFailureDetails().getErrorMessage());
        assertEquals(output, md.getSerializedOutput(), md.getInstanceId() + ": serialized output");
    }

    /** The instance's newest execution's history, as the worker received it in its last turn. */
    List<HistoryEvent> history(String id) {
        List<HistoryEvent> h = turns.history(id);
        if (h.isEmpty()) {
            fail("the worker never ran a turn of " + id);
        }
        return h;
    }

    @Override
    public void close() throws Exception {
        List<String> problems = new ArrayList<>();
        synchronized (sdkProblems) {
            problems.addAll(sdkProblems);
        }
        Logger.getLogger("com.microsoft.durabletask").removeHandler(sdkLog);
        if (workerDied != null) {
            problems.add("the worker thread died: " + workerDied);
        } else if (!workerThread.isAlive()) {
            problems.add("the worker thread ended before the tests did");
        }
        client.close(); // no-op for a caller's channel; the channels are ours to shut
        clientChannel.shutdownNow();
        workerChannel.shutdownNow();
        workerThread.interrupt();
        workerThread.join(TimeUnit.SECONDS.toMillis(30));
        if (workerThread.isAlive()) {
            problems.add("the worker thread did not end within 30 s of its channel's shutdown and an interrupt");
        }
        clientChannel.awaitTermination(10, TimeUnit.SECONDS);
        workerChannel.awaitTermination(10, TimeUnit.SECONDS);
        try {
            server.close();
        } catch (AssertionError e) {
            problems.add(e.getMessage());
        }
        if (!problems.isEmpty()) {
            fail("Java SDK or taskhubd problems:\n" + String.join("\n", problems));
        }
    }
}
