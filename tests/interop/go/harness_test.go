// Interop tests: the published Go SDK (github.com/microsoft/durabletask-go) as worker and client against taskhubd.
//
// Every test starts its own taskhubd (binary from $TASKHUBD_BIN; the tests skip when it is unset) on a free
// port with a fresh data dir, and stops it with SIGTERM at the end, asserting exit status 0 and no sanitizer
// report in its stderr.
//
// Environment:
//
//	TASKHUBD_BIN        taskhubd binary (required, else skip)
//	TASKHUBD_LOG_DIR    where each test's server log is kept (default: the test's temp dir, removed afterwards)
//	TASKHUBD_LOG_LEVEL  server --log-level (default debug)
package interop

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/microsoft/durabletask-go/api"
	"github.com/microsoft/durabletask-go/client"
	"github.com/microsoft/durabletask-go/task"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

const (
	readyTimeout = 30 * time.Second // server start (sanitizer builds start slowly)
	stopTimeout  = 30 * time.Second // SIGTERM -> exit
	testTimeout  = 90 * time.Second // budget for one test's RPCs
)

// sanitizerMarkers must never appear in the server's stderr.
var sanitizerMarkers = []string{"AddressSanitizer", "LeakSanitizer", "runtime error"}

// taskhubd is one running server process.
type taskhubd struct {
	cmd     *exec.Cmd
	port    int
	logPath string
	exited  chan struct{} // closed when the process has exited
	waitErr error         // valid after exited is closed
}

// startTaskhubd starts a server and registers its shutdown checks with t.Cleanup.
func startTaskhubd(t *testing.T, extraArgs ...string) *taskhubd {
	t.Helper()
	bin := os.Getenv("TASKHUBD_BIN")
	if bin == "" {
		t.Skip("TASKHUBD_BIN is not set")
	}
	tmp := t.TempDir()
	dataDir := filepath.Join(tmp, "data")
	logDir := os.Getenv("TASKHUBD_LOG_DIR")
	if logDir == "" {
		logDir = tmp
	} else if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatalf("creating TASKHUBD_LOG_DIR: %v", err)
	}
	logPath := filepath.Join(logDir, regexp.MustCompile(`[^A-Za-z0-9_.-]`).ReplaceAllString(t.Name(), "_")+".taskhubd.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("creating server log: %v", err)
	}
	defer logFile.Close()

	level := os.Getenv("TASKHUBD_LOG_LEVEL")
	if level == "" {
		level = "debug"
	}
	readR, readW, err := os.Pipe()
	if err != nil {
		t.Fatalf("pipe: %v", err)
	}
	defer readR.Close()
	args := append([]string{"--listen", "127.0.0.1:0", "--data-dir", dataDir, "--ready-fd", "3",
		"--log-level", level}, extraArgs...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.ExtraFiles = []*os.File{readW} // fd 3 in the child
	if err := cmd.Start(); err != nil {
		readW.Close()
		t.Fatalf("starting taskhubd %q: %v", bin, err)
	}
	readW.Close() // only the child holds the write end now: EOF if it dies before writing

	s := &taskhubd{cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()

	type line struct {
		text string
		err  error
	}
	lines := make(chan line, 1)
	go func() {
		text, err := bufio.NewReader(readR).ReadString('\n')
		lines <- line{text, err}
	}()
	timer := time.NewTimer(readyTimeout)
	defer timer.Stop()
	select {
	case l := <-lines:
		port, perr := strconv.Atoi(strings.TrimSpace(l.text))
		if l.err != nil || perr != nil || port <= 0 || port > 65535 {
			s.kill()
			t.Fatalf("taskhubd did not report a port on --ready-fd (line %q, read error %v)\n%s",
				l.text, l.err, s.logTail(60))
		}
		s.port = port
	case <-timer.C:
		s.kill()
		t.Fatalf("taskhubd did not report its port within %v\n%s", readyTimeout, s.logTail(60))
	}

	t.Cleanup(func() { s.stop(t) })
	return s
}

func (s *taskhubd) addr() string { return fmt.Sprintf("127.0.0.1:%d", s.port) }

func (s *taskhubd) kill() {
	_ = s.cmd.Process.Kill()
	<-s.exited
}

// stop sends SIGTERM and checks the exit status and the log.
func (s *taskhubd) stop(t *testing.T) {
	t.Helper()
	select {
	case <-s.exited:
		t.Errorf("taskhubd exited before the end of the test: %v", s.waitErr)
	default:
		if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Errorf("SIGTERM: %v", err)
		}
		timer := time.NewTimer(stopTimeout)
		select {
		case <-s.exited:
			timer.Stop()
			if s.waitErr != nil {
				t.Errorf("taskhubd did not exit cleanly after SIGTERM: %v (exit code %d)", s.waitErr,
					s.cmd.ProcessState.ExitCode())
			}
		case <-timer.C:
			s.kill()
			t.Errorf("taskhubd did not exit within %v of SIGTERM", stopTimeout)
		}
	}
	log, err := os.ReadFile(s.logPath)
	if err != nil {
		t.Errorf("reading server log: %v", err)
	}
	for _, m := range sanitizerMarkers {
		if strings.Contains(string(log), m) {
			t.Errorf("server log contains %q", m)
		}
	}
	if t.Failed() {
		t.Logf("server log: %s\n%s", s.logPath, s.logTail(150))
	}
}

// logTail returns the last n lines of the server log.
func (s *taskhubd) logTail(n int) string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", s.logPath, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d earlier lines in %s)", len(lines)-n, s.logPath)},
			lines[len(lines)-n:]...)
	}
	return "----- taskhubd log -----\n" + strings.Join(lines, "\n") + "\n------------------------"
}

// sdkLogger implements the SDK's backend.Logger. It keeps warnings and errors; errors (a rejected
// completion, a broken work-item stream) fail the test.
type sdkLogger struct {
	name   string
	mu     sync.Mutex
	warns  []string
	errors []string
}

func (l *sdkLogger) add(list *[]string, msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	*list = append(*list, time.Now().Format("15:04:05.000")+" "+l.name+": "+msg)
}
func (l *sdkLogger) Debug(v ...any)                 {}
func (l *sdkLogger) Debugf(format string, v ...any) {}
func (l *sdkLogger) Info(v ...any)                  {}
func (l *sdkLogger) Infof(format string, v ...any)  {}
func (l *sdkLogger) Warn(v ...any)                  { l.add(&l.warns, fmt.Sprint(v...)) }
func (l *sdkLogger) Warnf(format string, v ...any)  { l.add(&l.warns, fmt.Sprintf(format, v...)) }
func (l *sdkLogger) Error(v ...any)                 { l.add(&l.errors, fmt.Sprint(v...)) }
func (l *sdkLogger) Errorf(format string, v ...any) { l.add(&l.errors, fmt.Sprintf(format, v...)) }

func (l *sdkLogger) snapshot() (warns, errs []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.warns...), append([]string(nil), l.errors...)
}

// env is one test's server, Go worker and Go client.
type env struct {
	srv    *taskhubd
	client *client.TaskHubGrpcClient
	ctx    context.Context // ends at the test deadline or when the server dies
}

// newEnv starts taskhubd, a Go SDK worker serving the orchestrators and activities that register puts in the
// registry, and a Go SDK client (on its own connection, as a separate process would have).
func newEnv(t *testing.T, register func(r *task.TaskRegistry), extraServerArgs ...string) *env {
	t.Helper()
	srv := startTaskhubd(t, extraServerArgs...)

	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	go func() { // a crashed server fails the test at once instead of at the deadline
		select {
		case <-srv.exited:
			cancel()
		case <-ctx.Done():
		}
	}()

	dial := func() *grpc.ClientConn {
		conn, err := grpc.Dial(srv.addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatalf("grpc.Dial(%s): %v", srv.addr(), err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}

	r := task.NewTaskRegistry()
	register(r)
	workerLog := &sdkLogger{name: "go-worker"}
	worker := client.NewTaskHubGrpcClient(dial(), workerLog)
	workerCtx, stopWorker := context.WithCancel(context.Background())
	if err := worker.StartWorkItemListener(workerCtx, r); err != nil {
		stopWorker()
		t.Fatalf("StartWorkItemListener: %v", err)
	}
	// Runs before the connections close and the server stops (cleanups run last-in first-out).
	t.Cleanup(func() {
		warns, errs := workerLog.snapshot()
		stopWorker()
		for _, e := range errs {
			t.Errorf("Go SDK worker logged an error: %s", e)
		}
		if t.Failed() {
			for _, w := range warns {
				t.Logf("Go SDK worker warning: %s", w)
			}
		}
	})

	clientLog := &sdkLogger{name: "go-client"}
	return &env{srv: srv, client: client.NewTaskHubGrpcClient(dial(), clientLog), ctx: ctx}
}

// waitDone waits for an orchestration to reach a terminal state and returns its metadata.
func (e *env) waitDone(t *testing.T, id api.InstanceID) *api.OrchestrationMetadata {
	t.Helper()
	md, err := e.client.WaitForOrchestrationCompletion(e.ctx, id)
	if err != nil {
		t.Fatalf("WaitForOrchestrationCompletion(%s): %v", id, err)
	}
	return md
}

// waitStarted waits until an orchestration has left PENDING.
func (e *env) waitStarted(t *testing.T, id api.InstanceID) *api.OrchestrationMetadata {
	t.Helper()
	md, err := e.client.WaitForOrchestrationStart(e.ctx, id)
	if err != nil {
		t.Fatalf("WaitForOrchestrationStart(%s): %v", id, err)
	}
	return md
}

// fetch reads an orchestration's metadata with inputs and outputs.
func (e *env) fetch(t *testing.T, id api.InstanceID) *api.OrchestrationMetadata {
	t.Helper()
	md, err := e.client.FetchOrchestrationMetadata(e.ctx, id)
	if err != nil {
		t.Fatalf("FetchOrchestrationMetadata(%s): %v", id, err)
	}
	return md
}

// waitStatus waits (with the test deadline) for a status that only the worker's processing can produce.
func (e *env) waitStatus(t *testing.T, id api.InstanceID, want api.OrchestrationStatus) *api.OrchestrationMetadata {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		md := e.fetch(t, id)
		if md.RuntimeStatus == want {
			return md
		}
		if md.IsComplete() {
			t.Fatalf("%s: waiting for %v, but it ended as %v (output %s)", id, want, md.RuntimeStatus,
				md.SerializedOutput)
		}
		select {
		case <-e.ctx.Done():
			t.Fatalf("%s: still %v, never reached %v: %v", id, md.RuntimeStatus, want, e.ctx.Err())
		case <-tick.C:
		}
	}
}

// expectDone checks a terminal orchestration's status and serialized output.
func expectDone(t *testing.T, md *api.OrchestrationMetadata, status api.OrchestrationStatus, output string) {
	t.Helper()
	if md.RuntimeStatus != status {
		t.Errorf("%s: status %v, want %v (output %s)", md.InstanceID, md.RuntimeStatus, status, md.SerializedOutput)
	}
	if md.SerializedOutput != output {
		t.Errorf("%s: output %s, want %s", md.InstanceID, md.SerializedOutput, output)
	}
}

// grpcCode extracts the gRPC status code from an error the SDK wrapped with %w.
func grpcCode(err error) (codes.Code, string) {
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		return se.GRPCStatus().Code(), se.GRPCStatus().Message()
	}
	return codes.Unknown, ""
}
