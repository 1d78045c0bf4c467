package io.taskhubd.interop;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.junit.jupiter.api.Assumptions;

/**
 * One taskhubd process on a free port with a fresh data dir.
 *
 * <p>Environment: TASKHUBD_BIN (required, else the tests are skipped), TASKHUBD_WORK_DIR (where data dirs go;
 * default java.io.tmpdir), TASKHUBD_LOG_DIR (where each server's stderr is kept; default its data dir's parent),
 * TASKHUBD_LOG_LEVEL (default debug).
 *
 * <p>The port comes from --ready-fd: Java cannot hand a child an extra descriptor, so bash moves the stdout pipe
 * to fd 3 and points stdout at /dev/null before it execs taskhubd (same pid: SIGTERM reaches taskhubd itself).
 * The pipe ends at EOF when taskhubd writes the port and closes fd 3, or dies first.
 */
final class Taskhubd implements AutoCloseable {
    static final long READY_TIMEOUT_S = 60; // sanitizer builds start slowly on a busy host
    static final long STOP_TIMEOUT_S = 30;
    static final String[] SANITIZER_MARKERS = {
        "AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer", "runtime error:"
    };

    final String name;
    final Process process;
    final Path log;
    final int port;
    private boolean stopped;

    private Taskhubd(String name, Process process, Path log, int port) {
        this.name = name;
        this.process = process;
        this.log = log;
        this.port = port;
    }

    static Taskhubd start(String name) throws IOException, InterruptedException {
        return start(name, new String[0]);
    }

    /** With more taskhubd options (TLS, tokens). */
    static Taskhubd start(String name, String... extra) throws IOException, InterruptedException {
        String bin = System.getenv("TASKHUBD_BIN");
        Assumptions.assumeTrue(bin != null && !bin.isEmpty(), "TASKHUBD_BIN is not set");
        String workEnv = System.getenv("TASKHUBD_WORK_DIR");
        Path work = Paths.get(workEnv != null && !workEnv.isEmpty() ? workEnv : System.getProperty("java.io.tmpdir"));
        Files.createDirectories(work);
        Path dir = Files.createTempDirectory(work, name + "-");
        String logEnv = System.getenv("TASKHUBD_LOG_DIR");
        Path logDir = logEnv != null && !logEnv.isEmpty() ? Paths.get(logEnv) : dir;
        Files.createDirectories(logDir);
        Path log = logDir.resolve(name + ".taskhubd.log");
        String level = System.getenv("TASKHUBD_LOG_LEVEL");
        if (level == null || level.isEmpty()) {
            level = "debug";
        }

        List<String> cmd = new ArrayList<>(List.of("bash", "-c", "exec 3>&1 >/dev/null; exec \"$@\"", "taskhubd",
                bin, "--listen", "127.0.0.1:0", "--data-dir", dir.resolve("data").toString(),
                "--ops-listen", "127.0.0.1:0", "--ready-fd", "3", "--log-level", level));
        cmd.addAll(List.of(extra));
        ProcessBuilder pb = new ProcessBuilder(cmd)
                .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")))
                .redirectError(log.toFile());
        Process p = pb.start();

        CompletableFuture<String> line = CompletableFuture.supplyAsync(() -> {
            try (BufferedReader r = new BufferedReader(
                    new InputStreamReader(p.getInputStream(), StandardCharsets.US_ASCII))) {
                return r.readLine(); // null at EOF: taskhubd exited without writing its port
            } catch (IOException e) {
                return null;
            }
        });
        String text;
        try {
            text = line.get(READY_TIMEOUT_S, TimeUnit.SECONDS);
        } catch (TimeoutException | ExecutionException e) {
            text = null;
        }
        int port = -1;
        try {
            port = text == null ? -1 : Integer.parseInt(text.trim());
        } catch (NumberFormatException e) {
            port = -1;
        }
        if (port <= 0 || port > 65535) {
            p.destroyForcibly();
            p.waitFor(STOP_TIMEOUT_S, TimeUnit.SECONDS);
            fail("taskhubd did not report a port on --ready-fd within " + READY_TIMEOUT_S + " s (line " + text
                    + ")\n" + tail(log, 60));
        }
        return new Taskhubd(name, p, log, port);
    }

    String address() {
        return "127.0.0.1:" + port;
    }

    boolean alive() {
        return process.isAlive();
    }

    /** Stops the server with SIGTERM; fails when it had died, does not exit 0, or a sanitizer spoke. */
    @Override
    public void close() throws InterruptedException {
        if (stopped) {
            return;
        }
        stopped = true;
        List<String> problems = new ArrayList<>();
        if (!process.isAlive()) {
            problems.add("taskhubd exited before the end of the tests (status " + process.exitValue() + ")");
        } else {
            process.destroy(); // SIGTERM
            if (!process.waitFor(STOP_TIMEOUT_S, TimeUnit.SECONDS)) {
                process.destroyForcibly();
                process.waitFor();
                problems.add("taskhubd did not exit within " + STOP_TIMEOUT_S + " s of SIGTERM");
            } else if (process.exitValue() != 0) {
                problems.add("taskhubd exited with status " + process.exitValue() + " after SIGTERM (expected 0)");
            }
        }
        String text = read(log);
        for (String m : SANITIZER_MARKERS) {
            if (text.contains(m)) {
                problems.add("taskhubd's log " + log + " mentions " + m);
            }
        }
        if (!problems.isEmpty()) {
            fail(String.join("; ", problems) + "\n" + tail(log, 150));
        }
    }

    static String read(Path p) {
        try {
            return Files.readString(p, StandardCharsets.UTF_8);
        } catch (IOException e) {
            return "(cannot read " + p + ": " + e + ")";
        }
    }

    /** The last n lines of a server log, for failure messages. */
    static String tail(Path p, int n) {
        String[] lines = read(p).split("\n");
        StringBuilder b = new StringBuilder("----- taskhubd log " + p + " -----\n");
        int from = Math.max(0, lines.length - n);
        if (from > 0) {
            b.append("... (").append(from).append(" earlier lines)\n");
        }
        for (int i = from; i < lines.length; i++) {
            b.append(lines[i]).append('\n');
        }
        return b.append("------------------------").toString();
    }
}
