// The Go SDK against a taskhubd secured with TLS, mutual TLS and a bearer token (docs/security.md): the right
// credentials run an orchestration (durabletask-go's worker sends completions without a completion token, so
// this also covers that path), a wrong or missing token is refused with Unauthenticated, and a missing or
// foreign client certificate or an untrusted server fails the TLS handshake (Unavailable). Certificates come
// from tests/support/make-pki.sh (openssl, a throwaway CA) at run time.
package interop

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/microsoft/durabletask-go/api"
	"github.com/microsoft/durabletask-go/client"
	"github.com/microsoft/durabletask-go/task"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// ---- docs/security.md's Go block, verbatim (TestSecurityDocSnippet checks that it is) ----
// bearer sends "authorization: Bearer <token>" with every call and stream.
type bearer string

func (b bearer) GetRequestMetadata(ctx context.Context, uri ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}
func (b bearer) RequireTransportSecurity() bool { return true }

// dialTaskhubd connects with TLS trusting caFile, a client certificate when certFile is set (mutual TLS),
// and a bearer token when token is set. serverName is the name in taskhubd's certificate.
func dialTaskhubd(addr, serverName, caFile, certFile, keyFile, token string) (*grpc.ClientConn, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in %s", caFile)
	}
	cfg := &tls.Config{RootCAs: roots, ServerName: serverName, MinVersion: tls.VersionTLS12}
	if certFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(cfg))}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer(token)))
	}
	return grpc.Dial(addr, opts...)
}

// conn, err := dialTaskhubd("taskhubd.example:4001", "taskhubd.example", "ca.pem", "client.pem", "client.key", token)
// worker := client.NewTaskHubGrpcClient(conn, logger); worker.StartWorkItemListener(ctx, registry)
// ---- end of the block ----

// dialSecured is dialTaskhubd for the tests: the certificates name localhost.
func dialSecured(t *testing.T, addr, caFile, certFile, keyFile, token string) *grpc.ClientConn {
	t.Helper()
	conn, err := dialTaskhubd(addr, "localhost", caFile, certFile, keyFile, token)
	if err != nil {
		t.Fatalf("dialTaskhubd(%s): %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestSecurityDocSnippet: the Go code docs/security.md shows is the code above, which TestSecuredTaskhubd runs.
func TestSecurityDocSnippet(t *testing.T) {
	page, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "security.md"))
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.ReadFile("security_test.go")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)<!-- file: secured.go -->\\s*```go\\n(.*?)```\\n").FindSubmatch(page)
	if m == nil {
		t.Fatal("docs/security.md has no block marked secured.go")
	}
	if !strings.Contains(string(self), string(m[1])) {
		t.Fatal("docs/security.md's Go block differs from the code in security_test.go that the tests run")
	}
}

func TestSecuredTaskhubd(t *testing.T) {
	if os.Getenv("TASKHUBD_BIN") == "" {
		t.Skip("TASKHUBD_BIN is not set")
	}
	dir := t.TempDir()
	pki := filepath.Join(dir, "pki")
	mk := exec.Command("bash", filepath.Join("..", "..", "support", "make-pki.sh"), pki)
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("make-pki.sh: %v\n%s", err, out)
	}
	f := func(n string) string { return filepath.Join(pki, n) }
	const token = "go-token-4b9f0c2e8d1a"
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("# tokens\n"+token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startTaskhubd(t, "--tls-cert", f("server.pem"), "--tls-key", f("server.key"),
		"--tls-client-ca", f("ca.pem"), "--auth-token-file", tokens)
	addr := srv.addr()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	r := task.NewTaskRegistry()
	r.AddOrchestratorN("Greet", func(ctx *task.OrchestrationContext) (any, error) {
		var name, out string
		if err := ctx.GetInput(&name); err != nil {
			return nil, err
		}
		err := ctx.CallActivity("Hello", task.WithActivityInput(name)).Await(&out)
		return out, err
	})
	r.AddActivityN("Hello", func(ctx task.ActivityContext) (any, error) {
		var name string
		if err := ctx.GetInput(&name); err != nil {
			return nil, err
		}
		return "Hello, " + name + "!", nil
	})
	workerLog := &sdkLogger{name: "go-worker"}
	worker := client.NewTaskHubGrpcClient(dialSecured(t, addr, f("ca.pem"), f("client.pem"), f("client.key"), token),
		workerLog)
	workerCtx, stopWorker := context.WithCancel(context.Background())
	defer stopWorker()
	if err := worker.StartWorkItemListener(workerCtx, r); err != nil {
		t.Fatalf("StartWorkItemListener: %v", err)
	}

	c := client.NewTaskHubGrpcClient(dialSecured(t, addr, f("ca.pem"), f("client.pem"), f("client.key"), token),
		&sdkLogger{name: "go-client"})
	id, err := c.ScheduleNewOrchestration(ctx, "Greet", api.WithInput("Go"))
	if err != nil {
		t.Fatalf("ScheduleNewOrchestration: %v", err)
	}
	md, err := c.WaitForOrchestrationCompletion(ctx, id)
	if err != nil {
		t.Fatalf("WaitForOrchestrationCompletion: %v\n%s", err, srv.logTail(40))
	}
	expectDone(t, md, api.RUNTIME_STATUS_COMPLETED, `"Hello, Go!"`)
	if _, errs := workerLog.snapshot(); len(errs) > 0 {
		t.Errorf("the worker logged errors: %v", errs)
	}

	refused := func(what string, conn *grpc.ClientConn, want codes.Code) {
		t.Helper()
		cctx, ccancel := context.WithTimeout(ctx, 20*time.Second)
		defer ccancel()
		_, err := client.NewTaskHubGrpcClient(conn, &sdkLogger{name: what}).FetchOrchestrationMetadata(cctx, id)
		if status.Code(err) != want {
			t.Errorf("%s: got %v, want %v", what, err, want)
		}
		if want == codes.Unauthenticated && !strings.Contains(status.Convert(err).Message(), "missing or invalid bearer token") {
			t.Errorf("%s: message %q", what, status.Convert(err).Message())
		}
	}
	refused("wrong token", dialSecured(t, addr, f("ca.pem"), f("client.pem"), f("client.key"), token+"x"),
		codes.Unauthenticated)
	refused("no token", dialSecured(t, addr, f("ca.pem"), f("client.pem"), f("client.key"), ""), codes.Unauthenticated)
	refused("no client certificate", dialSecured(t, addr, f("ca.pem"), "", "", token), codes.Unavailable)
	refused("client certificate of another CA",
		dialSecured(t, addr, f("ca.pem"), f("other-client.pem"), f("other-client.key"), token), codes.Unavailable)
	refused("server CA not trusted",
		dialSecured(t, addr, f("other-ca.pem"), f("client.pem"), f("client.key"), token), codes.Unavailable)
}
