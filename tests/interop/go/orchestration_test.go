package interop

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/microsoft/durabletask-go/api"
	"github.com/microsoft/durabletask-go/task"
)

// counter counts activity executions per key.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) inc(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[key]++
}

func (c *counter) get(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[key]
}

type stepInput struct {
	Value string `json:"value"`
	Step  int    `json:"step"`
}

const chainSteps = 5

// Chain calls AppendStep chainSteps times in sequence, each on the previous result.
func chainOrchestrator(ctx *task.OrchestrationContext) (any, error) {
	var value string
	if err := ctx.GetInput(&value); err != nil {
		return nil, err
	}
	for i := 1; i <= chainSteps; i++ {
		ctx.SetCustomStatus(fmt.Sprintf("step %d", i))
		if err := ctx.CallActivity("AppendStep", task.WithActivityInput(stepInput{value, i})).Await(&value); err != nil {
			return nil, err
		}
	}
	return value, nil
}

// Scenario 1: function chaining. Ten chains run at once, so the server must keep the Go worker's token-less
// completions apart by instance id (orchestrations) and instance id + task id (activities).
func TestFunctionChaining(t *testing.T) {
	var runs counter
	e := newEnv(t, func(r *task.TaskRegistry) {
		r.AddOrchestratorN("Chain", chainOrchestrator)
		r.AddActivityN("AppendStep", func(ctx task.ActivityContext) (any, error) {
			var in stepInput
			if err := ctx.GetInput(&in); err != nil {
				return nil, err
			}
			runs.inc(fmt.Sprintf("%s#%d", in.Value, in.Step))
			return fmt.Sprintf("%s/%d", in.Value, in.Step), nil
		})
	})

	const chains = 10
	ids := make([]api.InstanceID, chains)
	before := time.Now()
	for i := range ids {
		id, err := e.client.ScheduleNewOrchestration(e.ctx, "Chain",
			api.WithInstanceID(api.InstanceID(fmt.Sprintf("go-chain-%d", i))), api.WithInput(fmt.Sprintf("c%d", i)))
		if err != nil {
			t.Fatalf("ScheduleNewOrchestration: %v", err)
		}
		if want := api.InstanceID(fmt.Sprintf("go-chain-%d", i)); id != want {
			t.Fatalf("ScheduleNewOrchestration returned id %q, want %q", id, want)
		}
		ids[i] = id
	}
	for i, id := range ids {
		md := e.waitDone(t, id)
		want := fmt.Sprintf("c%d", i)
		for s := 1; s <= chainSteps; s++ {
			want += fmt.Sprintf("/%d", s)
		}
		expectDone(t, md, api.RUNTIME_STATUS_COMPLETED, fmt.Sprintf("%q", want))
		if md.Name != "Chain" {
			t.Errorf("%s: name %q, want Chain", id, md.Name)
		}
		if md.SerializedInput != fmt.Sprintf(`"c%d"`, i) {
			t.Errorf("%s: input %s, want \"c%d\"", id, md.SerializedInput, i)
		}
		if md.SerializedCustomStatus != fmt.Sprintf("step %d", chainSteps) {
			t.Errorf("%s: custom status %q, want %q", id, md.SerializedCustomStatus, fmt.Sprintf("step %d", chainSteps))
		}
		if md.CreatedAt.Before(before.Add(-2*time.Second)) || md.CreatedAt.After(time.Now()) {
			t.Errorf("%s: createdAt %v outside the test's run (started %v)", id, md.CreatedAt, before)
		}
		if md.LastUpdatedAt.Before(md.CreatedAt) {
			t.Errorf("%s: lastUpdatedAt %v before createdAt %v", id, md.LastUpdatedAt, md.CreatedAt)
		}
		// Each step's input carries the previous step's result, so every step ran once, in order.
		v := fmt.Sprintf("c%d", i)
		for s := 1; s <= chainSteps; s++ {
			if n := runs.get(fmt.Sprintf("%s#%d", v, s)); n != 1 {
				t.Errorf("%s: activity step %d (input %q) ran %d times, want 1", id, s, v, n)
			}
			v += fmt.Sprintf("/%d", s)
		}
	}
}

// Scenario 2: fan-out/fan-in. fanOutN activities are scheduled in one turn and awaited together.
func TestFanOutFanIn(t *testing.T) {
	const fanOutN = 300
	var executed atomic.Int64
	var seen sync.Map
	e := newEnv(t, func(r *task.TaskRegistry) {
		r.AddOrchestratorN("FanOut", func(ctx *task.OrchestrationContext) (any, error) {
			var n int
			if err := ctx.GetInput(&n); err != nil {
				return nil, err
			}
			tasks := make([]task.Task, n)
			for i := 0; i < n; i++ {
				tasks[i] = ctx.CallActivity("Square", task.WithActivityInput(i+1))
			}
			sum := 0
			for _, tk := range tasks {
				var sq int
				if err := tk.Await(&sq); err != nil {
					return nil, err
				}
				sum += sq
			}
			return map[string]int{"count": n, "sum": sum}, nil
		})
		r.AddActivityN("Square", func(ctx task.ActivityContext) (any, error) {
			var x int
			if err := ctx.GetInput(&x); err != nil {
				return nil, err
			}
			executed.Add(1)
			if _, dup := seen.LoadOrStore(x, true); dup {
				return nil, fmt.Errorf("Square(%d) delivered twice", x)
			}
			return x * x, nil
		})
	})

	id, err := e.client.ScheduleNewOrchestration(e.ctx, "FanOut", api.WithInput(fanOutN))
	if err != nil {
		t.Fatalf("ScheduleNewOrchestration: %v", err)
	}
	md := e.waitDone(t, id)
	wantSum := fanOutN * (fanOutN + 1) * (2*fanOutN + 1) / 6
	expectDone(t, md, api.RUNTIME_STATUS_COMPLETED, fmt.Sprintf(`{"count":%d,"sum":%d}`, fanOutN, wantSum))
	if n := executed.Load(); n != fanOutN {
		t.Errorf("Square ran %d times, want %d", n, fanOutN)
	}
}

// waitForApproval waits for the "approval" event and returns "<input>:<event payload>".
func waitForApproval(ctx *task.OrchestrationContext) (any, error) {
	var in, approval string
	if err := ctx.GetInput(&in); err != nil {
		return nil, err
	}
	ctx.SetCustomStatus("waiting for approval")
	if err := ctx.WaitForSingleEvent("approval", -1).Await(&approval); err != nil {
		return nil, err
	}
	ctx.SetCustomStatus("approved")
	return in + ":" + approval, nil
}

// Scenario 3: client operations (schedule with an id, metadata, raise event, terminate, purge, errors).
func TestClientOperations(t *testing.T) {
	e := newEnv(t, func(r *task.TaskRegistry) { r.AddOrchestratorN("WaitForApproval", waitForApproval) })
	c := e.client

	t.Run("ScheduleFetchRaiseEvent", func(t *testing.T) {
		const id = api.InstanceID("go-ops-event")
		before := time.Now()
		got, err := c.ScheduleNewOrchestration(e.ctx, "WaitForApproval", api.WithInstanceID(id), api.WithInput("order-42"))
		if err != nil {
			t.Fatalf("ScheduleNewOrchestration: %v", err)
		}
		if got != id {
			t.Fatalf("ScheduleNewOrchestration returned %q, want %q", got, id)
		}
		md := e.fetch(t, id)
		if md.InstanceID != id || md.Name != "WaitForApproval" || md.SerializedInput != `"order-42"` {
			t.Errorf("metadata: id %q name %q input %s; want %q WaitForApproval \"order-42\"",
				md.InstanceID, md.Name, md.SerializedInput, id)
		}
		if md.RuntimeStatus != api.RUNTIME_STATUS_PENDING && md.RuntimeStatus != api.RUNTIME_STATUS_RUNNING {
			t.Errorf("fresh instance status %v, want PENDING or RUNNING", md.RuntimeStatus)
		}
		if md.CreatedAt.Before(before.Add(-2*time.Second)) || md.CreatedAt.After(time.Now().Add(2*time.Second)) {
			t.Errorf("createdAt %v, want about %v", md.CreatedAt, before)
		}

		md = e.waitStarted(t, id)
		if md.RuntimeStatus != api.RUNTIME_STATUS_RUNNING {
			t.Fatalf("after WaitForOrchestrationStart: status %v, want RUNNING", md.RuntimeStatus)
		}
		if md.SerializedCustomStatus != "waiting for approval" {
			t.Errorf("custom status %q, want %q", md.SerializedCustomStatus, "waiting for approval")
		}
		noPayloads, err := c.FetchOrchestrationMetadata(e.ctx, id, api.WithFetchPayloads(false))
		if err != nil {
			t.Fatalf("FetchOrchestrationMetadata(no payloads): %v", err)
		}
		if noPayloads.SerializedInput != "" || noPayloads.Name != "WaitForApproval" {
			t.Errorf("without payloads: input %q name %q, want no input and WaitForApproval",
				noPayloads.SerializedInput, noPayloads.Name)
		}

		if err := c.RaiseEvent(e.ctx, id, "approval", api.WithEventPayload("yes")); err != nil {
			t.Fatalf("RaiseEvent: %v", err)
		}
		md = e.waitDone(t, id)
		expectDone(t, md, api.RUNTIME_STATUS_COMPLETED, `"order-42:yes"`)
		if md.SerializedCustomStatus != "approved" {
			t.Errorf("custom status %q, want approved", md.SerializedCustomStatus)
		}
		if md.LastUpdatedAt.Before(md.CreatedAt) {
			t.Errorf("lastUpdatedAt %v before createdAt %v", md.LastUpdatedAt, md.CreatedAt)
		}

		// An event to a completed instance is accepted and dropped.
		if err := c.RaiseEvent(e.ctx, id, "approval", api.WithEventPayload("late")); err != nil {
			t.Errorf("RaiseEvent to a completed instance: %v, want OK", err)
		}
		expectDone(t, e.fetch(t, id), api.RUNTIME_STATUS_COMPLETED, `"order-42:yes"`)

		// Purge: gone afterwards; a second purge finds nothing.
		if err := c.PurgeOrchestrationState(e.ctx, id); err != nil {
			t.Fatalf("PurgeOrchestrationState: %v", err)
		}
		if _, err := c.FetchOrchestrationMetadata(e.ctx, id); !errors.Is(err, api.ErrInstanceNotFound) {
			t.Errorf("FetchOrchestrationMetadata after purge: %v, want ErrInstanceNotFound", err)
		}
		if err := c.PurgeOrchestrationState(e.ctx, id); !errors.Is(err, api.ErrInstanceNotFound) {
			t.Errorf("second PurgeOrchestrationState: %v, want ErrInstanceNotFound", err)
		}
	})

	t.Run("EventBeforeStart", func(t *testing.T) {
		// Raised right after scheduling, possibly before the first turn: the SDK buffers it.
		id, err := c.ScheduleNewOrchestration(e.ctx, "WaitForApproval", api.WithInput("early"))
		if err != nil {
			t.Fatalf("ScheduleNewOrchestration: %v", err)
		}
		if err := c.RaiseEvent(e.ctx, id, "approval", api.WithEventPayload("ok")); err != nil {
			t.Fatalf("RaiseEvent: %v", err)
		}
		expectDone(t, e.waitDone(t, id), api.RUNTIME_STATUS_COMPLETED, `"early:ok"`)
	})

	t.Run("TerminateRunning", func(t *testing.T) {
		const id = api.InstanceID("go-ops-terminate")
		if _, err := c.ScheduleNewOrchestration(e.ctx, "WaitForApproval", api.WithInstanceID(id), api.WithInput("t")); err != nil {
			t.Fatalf("ScheduleNewOrchestration: %v", err)
		}
		e.waitStarted(t, id)
		if err := c.TerminateOrchestration(e.ctx, id, api.WithOutput("stopped by test")); err != nil {
			t.Fatalf("TerminateOrchestration: %v", err)
		}
		md := e.waitDone(t, id)
		expectDone(t, md, api.RUNTIME_STATUS_TERMINATED, `"stopped by test"`)

		// Events after termination are dropped; terminating again is a no-op.
		if err := c.RaiseEvent(e.ctx, id, "approval", api.WithEventPayload("late")); err != nil {
			t.Errorf("RaiseEvent to a terminated instance: %v, want OK", err)
		}
		if err := c.TerminateOrchestration(e.ctx, id, api.WithOutput("again")); err != nil {
			t.Errorf("second TerminateOrchestration: %v, want OK", err)
		}
		expectDone(t, e.fetch(t, id), api.RUNTIME_STATUS_TERMINATED, `"stopped by test"`)

		if err := c.PurgeOrchestrationState(e.ctx, id); err != nil {
			t.Fatalf("PurgeOrchestrationState: %v", err)
		}
		if _, err := c.FetchOrchestrationMetadata(e.ctx, id); !errors.Is(err, api.ErrInstanceNotFound) {
			t.Errorf("FetchOrchestrationMetadata after purge: %v, want ErrInstanceNotFound", err)
		}
	})

	t.Run("TerminateScheduledPending", func(t *testing.T) {
		// A start time an hour ahead keeps it PENDING; terminate ends it without a worker turn.
		const id = api.InstanceID("go-ops-future")
		if _, err := c.ScheduleNewOrchestration(e.ctx, "WaitForApproval", api.WithInstanceID(id),
			api.WithInput("later"), api.WithStartTime(time.Now().Add(time.Hour))); err != nil {
			t.Fatalf("ScheduleNewOrchestration: %v", err)
		}
		if md := e.fetch(t, id); md.RuntimeStatus != api.RUNTIME_STATUS_PENDING {
			t.Errorf("future-start instance status %v, want PENDING", md.RuntimeStatus)
		}
		if err := c.TerminateOrchestration(e.ctx, id, api.WithOutput("never ran")); err != nil {
			t.Fatalf("TerminateOrchestration: %v", err)
		}
		expectDone(t, e.waitDone(t, id), api.RUNTIME_STATUS_TERMINATED, `"never ran"`)
		if err := c.PurgeOrchestrationState(e.ctx, id); err != nil {
			t.Fatalf("PurgeOrchestrationState: %v", err)
		}
		if _, err := c.FetchOrchestrationMetadata(e.ctx, id); !errors.Is(err, api.ErrInstanceNotFound) {
			t.Errorf("FetchOrchestrationMetadata after purge: %v, want ErrInstanceNotFound", err)
		}
	})

	t.Run("PurgeRunningIsRefused", func(t *testing.T) {
		const id = api.InstanceID("go-ops-purge-running")
		if _, err := c.ScheduleNewOrchestration(e.ctx, "WaitForApproval", api.WithInstanceID(id), api.WithInput("p")); err != nil {
			t.Fatalf("ScheduleNewOrchestration: %v", err)
		}
		e.waitStarted(t, id)
		// deletedInstanceCount 0 surfaces as ErrInstanceNotFound in the Go client.
		if err := c.PurgeOrchestrationState(e.ctx, id); !errors.Is(err, api.ErrInstanceNotFound) {
			t.Errorf("PurgeOrchestrationState(running): %v, want ErrInstanceNotFound (nothing purged)", err)
		}
		if md := e.fetch(t, id); md.RuntimeStatus != api.RUNTIME_STATUS_RUNNING {
			t.Errorf("after refused purge: status %v, want RUNNING", md.RuntimeStatus)
		}
		if err := c.RaiseEvent(e.ctx, id, "approval", api.WithEventPayload("done")); err != nil {
			t.Fatalf("RaiseEvent: %v", err)
		}
		expectDone(t, e.waitDone(t, id), api.RUNTIME_STATUS_COMPLETED, `"p:done"`)
	})

	t.Run("UnknownInstance", func(t *testing.T) {
		const id = api.InstanceID("go-ops-no-such-instance")
		if _, err := c.FetchOrchestrationMetadata(e.ctx, id); !errors.Is(err, api.ErrInstanceNotFound) {
			t.Errorf("FetchOrchestrationMetadata: %v, want ErrInstanceNotFound", err)
		}
		if _, err := c.WaitForOrchestrationCompletion(e.ctx, id); !errors.Is(err, api.ErrInstanceNotFound) {
			t.Errorf("WaitForOrchestrationCompletion: %v, want ErrInstanceNotFound", err)
		}
		if err := c.RaiseEvent(e.ctx, id, "approval"); err == nil || !hasCode(err, "NotFound") {
			t.Errorf("RaiseEvent: %v, want NOT_FOUND", err)
		}
		if err := c.TerminateOrchestration(e.ctx, id); err == nil || !hasCode(err, "NotFound") {
			t.Errorf("TerminateOrchestration: %v, want NOT_FOUND", err)
		}
		if err := c.PurgeOrchestrationState(e.ctx, id); !errors.Is(err, api.ErrInstanceNotFound) {
			t.Errorf("PurgeOrchestrationState: %v, want ErrInstanceNotFound", err)
		}
	})
}

func hasCode(err error, want string) bool {
	code, _ := grpcCode(err)
	return code.String() == want
}

// Suspend and resume: an event raised while suspended is held back until the resume.
func TestSuspendResume(t *testing.T) {
	e := newEnv(t, func(r *task.TaskRegistry) { r.AddOrchestratorN("WaitForApproval", waitForApproval) })
	c := e.client
	const id = api.InstanceID("go-suspend")
	if _, err := c.ScheduleNewOrchestration(e.ctx, "WaitForApproval", api.WithInstanceID(id), api.WithInput("s")); err != nil {
		t.Fatalf("ScheduleNewOrchestration: %v", err)
	}
	e.waitStarted(t, id)
	if err := c.SuspendOrchestration(e.ctx, id, "test"); err != nil {
		t.Fatalf("SuspendOrchestration: %v", err)
	}
	if err := c.RaiseEvent(e.ctx, id, "approval", api.WithEventPayload("while-suspended")); err != nil {
		t.Fatalf("RaiseEvent: %v", err)
	}
	e.waitStatus(t, id, api.RUNTIME_STATUS_SUSPENDED)
	if err := c.ResumeOrchestration(e.ctx, id, "test"); err != nil {
		t.Fatalf("ResumeOrchestration: %v", err)
	}
	expectDone(t, e.waitDone(t, id), api.RUNTIME_STATUS_COMPLETED, `"s:while-suspended"`)
}

// Scenario 4: the Go client's OrchestrationIdReusePolicy, which uses the legacy encoding
// {operationStatus = 1, action = 2}. protocol.md §3.11: status not listed -> ALREADY_EXISTS; listed with
// IGNORE -> OK, nothing created (the id is echoed); listed with TERMINATE -> replace (terminating a live one).
// No policy: a finished instance is replaced (as Azure's managed scheduler does), a live one is ALREADY_EXISTS with
// "orchestration instance already exists".
// (action ERROR=0 is not on the wire, so it reads as a HEAD-style replaceableStatus list; not tested.)
func TestIdReusePolicyLegacy(t *testing.T) {
	e := newEnv(t, func(r *task.TaskRegistry) {
		r.AddOrchestratorN("WaitForApproval", waitForApproval)
		r.AddOrchestratorN("Echo", func(ctx *task.OrchestrationContext) (any, error) {
			var in string
			if err := ctx.GetInput(&in); err != nil {
				return nil, err
			}
			return "echo:" + in, nil
		})
	})
	c := e.client
	policy := func(action api.CreateOrchestrationAction, statuses ...api.OrchestrationStatus) api.NewOrchestrationOptions {
		return api.WithOrchestrationIdReusePolicy(&api.OrchestrationIdReusePolicy{Action: action, OperationStatus: statuses})
	}
	schedule := func(t *testing.T, name string, id api.InstanceID, input string, opts ...api.NewOrchestrationOptions) (api.InstanceID, error) {
		t.Helper()
		return c.ScheduleNewOrchestration(e.ctx, name, append([]api.NewOrchestrationOptions{api.WithInstanceID(id), api.WithInput(input)}, opts...)...)
	}
	expectAlreadyExists := func(t *testing.T, what string, err error) {
		t.Helper()
		code, msg := grpcCode(err)
		if err == nil || code.String() != "AlreadyExists" {
			t.Errorf("%s: %v, want ALREADY_EXISTS", what, err)
		} else if !strings.Contains(msg, "orchestration instance already exists") {
			t.Errorf("%s: message %q does not contain %q", what, msg, "orchestration instance already exists")
		}
	}

	t.Run("Completed", func(t *testing.T) {
		const id = api.InstanceID("go-reuse-completed")
		if _, err := schedule(t, "Echo", id, "first"); err != nil {
			t.Fatalf("first ScheduleNewOrchestration: %v", err)
		}
		first := e.waitDone(t, id)
		expectDone(t, first, api.RUNTIME_STATUS_COMPLETED, `"echo:first"`)

		_, err := schedule(t, "Echo", id, "not-listed", policy(api.REUSE_ID_ACTION_TERMINATE, api.RUNTIME_STATUS_FAILED, api.RUNTIME_STATUS_TERMINATED))
		expectAlreadyExists(t, "TERMINATE with COMPLETED not listed", err)
		_, err = schedule(t, "Echo", id, "not-listed", policy(api.REUSE_ID_ACTION_IGNORE, api.RUNTIME_STATUS_RUNNING))
		expectAlreadyExists(t, "IGNORE with COMPLETED not listed", err)

		got, err := schedule(t, "Echo", id, "ignored", policy(api.REUSE_ID_ACTION_IGNORE, api.RUNTIME_STATUS_COMPLETED, api.RUNTIME_STATUS_FAILED))
		if err != nil {
			t.Fatalf("IGNORE with COMPLETED listed: %v, want OK", err)
		}
		if got != id {
			t.Errorf("IGNORE returned id %q, want %q", got, id)
		}
		md := e.fetch(t, id)
		expectDone(t, md, api.RUNTIME_STATUS_COMPLETED, `"echo:first"`)
		if md.SerializedInput != `"first"` || !md.CreatedAt.Equal(first.CreatedAt) {
			t.Errorf("IGNORE changed the instance: input %s created %v, want \"first\" %v",
				md.SerializedInput, md.CreatedAt, first.CreatedAt)
		}

		got, err = schedule(t, "Echo", id, "second", policy(api.REUSE_ID_ACTION_TERMINATE, api.RUNTIME_STATUS_COMPLETED))
		if err != nil {
			t.Fatalf("TERMINATE with COMPLETED listed: %v, want OK", err)
		}
		if got != id {
			t.Errorf("TERMINATE returned id %q, want %q", got, id)
		}
		second := e.waitDone(t, id)
		expectDone(t, second, api.RUNTIME_STATUS_COMPLETED, `"echo:second"`)
		if second.SerializedInput != `"second"` {
			t.Errorf("replacement input %s, want \"second\"", second.SerializedInput)
		}
		if second.CreatedAt.Before(first.CreatedAt) {
			t.Errorf("replacement createdAt %v before the original's %v", second.CreatedAt, first.CreatedAt)
		}

		// no policy at all: the finished instance is replaced too
		if got, err = schedule(t, "Echo", id, "no-policy"); err != nil || got != id {
			t.Fatalf("no policy on a finished instance: %q, %v, want %q, OK", got, err, id)
		}
		expectDone(t, e.waitDone(t, id), api.RUNTIME_STATUS_COMPLETED, `"echo:no-policy"`)
	})

	t.Run("Running", func(t *testing.T) {
		const id = api.InstanceID("go-reuse-running")
		if _, err := schedule(t, "WaitForApproval", id, "first"); err != nil {
			t.Fatalf("first ScheduleNewOrchestration: %v", err)
		}
		e.waitStarted(t, id)

		_, err := schedule(t, "WaitForApproval", id, "no-policy")
		expectAlreadyExists(t, "no policy on a running instance", err)
		_, err = schedule(t, "WaitForApproval", id, "not-listed", policy(api.REUSE_ID_ACTION_TERMINATE, api.RUNTIME_STATUS_COMPLETED))
		expectAlreadyExists(t, "TERMINATE with RUNNING not listed", err)

		got, err := schedule(t, "WaitForApproval", id, "ignored", policy(api.REUSE_ID_ACTION_IGNORE, api.RUNTIME_STATUS_RUNNING, api.RUNTIME_STATUS_PENDING))
		if err != nil {
			t.Fatalf("IGNORE with RUNNING listed: %v, want OK", err)
		}
		if got != id {
			t.Errorf("IGNORE returned id %q, want %q", got, id)
		}
		if md := e.fetch(t, id); md.RuntimeStatus != api.RUNTIME_STATUS_RUNNING || md.SerializedInput != `"first"` {
			t.Errorf("after IGNORE: status %v input %s, want RUNNING \"first\"", md.RuntimeStatus, md.SerializedInput)
		}

		_, err = schedule(t, "WaitForApproval", id, "second",
			policy(api.REUSE_ID_ACTION_TERMINATE, api.RUNTIME_STATUS_RUNNING, api.RUNTIME_STATUS_PENDING, api.RUNTIME_STATUS_SUSPENDED))
		if err != nil {
			t.Fatalf("TERMINATE with RUNNING listed: %v, want OK", err)
		}
		md := e.waitStarted(t, id)
		if md.RuntimeStatus != api.RUNTIME_STATUS_RUNNING || md.SerializedInput != `"second"` {
			t.Errorf("replacement: status %v input %s, want RUNNING \"second\"", md.RuntimeStatus, md.SerializedInput)
		}
		if err := c.RaiseEvent(e.ctx, id, "approval", api.WithEventPayload("go")); err != nil {
			t.Fatalf("RaiseEvent: %v", err)
		}
		expectDone(t, e.waitDone(t, id), api.RUNTIME_STATUS_COMPLETED, `"second:go"`)
	})
}

// Sub-orchestrations, a durable timer racing an event, continue-as-new and an activity failure.
func TestMoreOrchestrationFeatures(t *testing.T) {
	e := newEnv(t, func(r *task.TaskRegistry) {
		r.AddOrchestratorN("Chain", chainOrchestrator)
		r.AddActivityN("AppendStep", func(ctx task.ActivityContext) (any, error) {
			var in stepInput
			if err := ctx.GetInput(&in); err != nil {
				return nil, err
			}
			return fmt.Sprintf("%s/%d", in.Value, in.Step), nil
		})
		r.AddOrchestratorN("Parent", func(ctx *task.OrchestrationContext) (any, error) {
			var a, b string
			t1 := ctx.CallSubOrchestrator("Chain", task.WithSubOrchestratorInput("a"),
				task.WithSubOrchestrationInstanceID(string(ctx.ID)+"-child-a"))
			t2 := ctx.CallSubOrchestrator("Chain", task.WithSubOrchestratorInput("b"),
				task.WithSubOrchestrationInstanceID(string(ctx.ID)+"-child-b"))
			if err := t1.Await(&a); err != nil {
				return nil, err
			}
			if err := t2.Await(&b); err != nil {
				return nil, err
			}
			return []string{a, b}, nil
		})
		r.AddOrchestratorN("EventOrTimeout", func(ctx *task.OrchestrationContext) (any, error) {
			var v string
			err := ctx.WaitForSingleEvent("never", time.Second).Await(&v)
			if errors.Is(err, task.ErrTaskCanceled) {
				return "timed out", nil
			}
			return "got " + v, err
		})
		r.AddOrchestratorN("Countdown", func(ctx *task.OrchestrationContext) (any, error) {
			var n int
			if err := ctx.GetInput(&n); err != nil {
				return nil, err
			}
			if n > 0 {
				ctx.ContinueAsNew(n - 1)
				return nil, nil
			}
			return "liftoff", nil
		})
		r.AddOrchestratorN("Failing", func(ctx *task.OrchestrationContext) (any, error) {
			if err := ctx.CallActivity("Boom").Await(nil); err != nil {
				return nil, fmt.Errorf("activity failed: %w", err)
			}
			return "unreachable", nil
		})
		r.AddActivityN("Boom", func(ctx task.ActivityContext) (any, error) {
			return nil, errors.New("boom")
		})
	})
	c := e.client

	t.Run("SubOrchestrations", func(t *testing.T) {
		const id = api.InstanceID("go-parent")
		if _, err := c.ScheduleNewOrchestration(e.ctx, "Parent", api.WithInstanceID(id)); err != nil {
			t.Fatalf("ScheduleNewOrchestration: %v", err)
		}
		expectDone(t, e.waitDone(t, id), api.RUNTIME_STATUS_COMPLETED, `["a/1/2/3/4/5","b/1/2/3/4/5"]`)
		expectDone(t, e.fetch(t, id+"-child-a"), api.RUNTIME_STATUS_COMPLETED, `"a/1/2/3/4/5"`)
		expectDone(t, e.fetch(t, id+"-child-b"), api.RUNTIME_STATUS_COMPLETED, `"b/1/2/3/4/5"`)
	})

	t.Run("TimerTimeout", func(t *testing.T) {
		start := time.Now()
		id, err := c.ScheduleNewOrchestration(e.ctx, "EventOrTimeout")
		if err != nil {
			t.Fatalf("ScheduleNewOrchestration: %v", err)
		}
		md := e.waitDone(t, id)
		expectDone(t, md, api.RUNTIME_STATUS_COMPLETED, `"timed out"`)
		if elapsed := time.Since(start); elapsed < time.Second {
			t.Errorf("1 s timer fired after %v", elapsed)
		}
	})

	t.Run("ContinueAsNew", func(t *testing.T) {
		id, err := c.ScheduleNewOrchestration(e.ctx, "Countdown", api.WithInput(5))
		if err != nil {
			t.Fatalf("ScheduleNewOrchestration: %v", err)
		}
		md := e.waitDone(t, id)
		expectDone(t, md, api.RUNTIME_STATUS_COMPLETED, `"liftoff"`)
		if md.SerializedInput != "0" {
			t.Errorf("input after continue-as-new %s, want 0", md.SerializedInput)
		}
	})

	t.Run("ActivityFailure", func(t *testing.T) {
		id, err := c.ScheduleNewOrchestration(e.ctx, "Failing")
		if err != nil {
			t.Fatalf("ScheduleNewOrchestration: %v", err)
		}
		md := e.waitDone(t, id)
		if md.RuntimeStatus != api.RUNTIME_STATUS_FAILED {
			t.Errorf("status %v, want FAILED (output %s)", md.RuntimeStatus, md.SerializedOutput)
		}
	})
}
