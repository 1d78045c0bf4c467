package io.taskhubd.interop;

import com.microsoft.durabletask.implementation.protobuf.OrchestratorService.HistoryEvent;
import com.microsoft.durabletask.implementation.protobuf.OrchestratorService.OrchestratorRequest;
import com.microsoft.durabletask.implementation.protobuf.OrchestratorService.OrchestratorResponse;
import com.microsoft.durabletask.implementation.protobuf.OrchestratorService.WorkItem;
import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.ForwardingClientCall;
import io.grpc.ForwardingClientCallListener;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Sits on the Java worker's channel and keeps every orchestrator work item taskhubd sent it and every
 * completion the SDK sent back, per instance id: the turns as the SDK saw them. The 1.5.0 client has no history
 * call, so the tests read an execution's history from its last turn (past events + new events: what taskhubd
 * stored, minus the completion the SDK then sent).
 */
final class TurnRecorder implements ClientInterceptor {
    /** One orchestrator work item and the SDK's answer to it. */
    static final class Turn {
        final OrchestratorRequest request;
        volatile OrchestratorResponse response;

        Turn(OrchestratorRequest request) {
            this.request = request;
        }

        List<HistoryEvent> history() {
            List<HistoryEvent> all = new ArrayList<>(request.getPastEventsList());
            all.addAll(request.getNewEventsList());
            return all;
        }
    }

    private final Map<String, List<Turn>> turns = new ConcurrentHashMap<>();

    @Override
    public <ReqT, RespT> ClientCall<ReqT, RespT> interceptCall(
            MethodDescriptor<ReqT, RespT> method, CallOptions options, Channel next) {
        return new ForwardingClientCall.SimpleForwardingClientCall<ReqT, RespT>(next.newCall(method, options)) {
            @Override
            public void start(Listener<RespT> listener, Metadata headers) {
                super.start(new ForwardingClientCallListener.SimpleForwardingClientCallListener<RespT>(listener) {
                    @Override
                    public void onMessage(RespT message) {
                        if (message instanceof WorkItem && ((WorkItem) message).hasOrchestratorRequest()) {
                            OrchestratorRequest r = ((WorkItem) message).getOrchestratorRequest();
                            List<Turn> list = turns.computeIfAbsent(r.getInstanceId(), k -> new ArrayList<>());
                            synchronized (list) {
                                list.add(new Turn(r));
                            }
                        }
                        super.onMessage(message);
                    }
                }, headers);
            }

            @Override
            public void sendMessage(ReqT message) {
                if (message instanceof OrchestratorResponse) {
                    OrchestratorResponse r = (OrchestratorResponse) message;
                    List<Turn> list = turns.get(r.getInstanceId());
                    if (list != null) {
                        synchronized (list) {
                            for (int i = list.size() - 1; i >= 0; i--) {
                                if (list.get(i).response == null) {
                                    list.get(i).response = r;
                                    break;
                                }
                            }
                        }
                    }
                }
                super.sendMessage(message);
            }
        };
    }

    /** Every turn the worker ran for this instance id (all executions), oldest first. */
    List<Turn> turns(String instanceId) {
        List<Turn> list = turns.get(instanceId);
        if (list == null) {
            return List.of();
        }
        synchronized (list) {
            return new ArrayList<>(list);
        }
    }

    /** The turns of the instance's newest execution (the one its last turn belongs to). */
    List<Turn> lastExecutionTurns(String instanceId) {
        List<Turn> all = turns(instanceId);
        if (all.isEmpty()) {
            return all;
        }
        String exec = executionId(all.get(all.size() - 1));
        List<Turn> out = new ArrayList<>();
        for (Turn t : all) {
            if (exec.equals(executionId(t))) {
                out.add(t);
            }
        }
        return out;
    }

    /** The newest execution's history as of its last turn. */
    List<HistoryEvent> history(String instanceId) {
        List<Turn> all = turns(instanceId);
        return all.isEmpty() ? List.of() : all.get(all.size() - 1).history();
    }

    static String executionId(Turn t) {
        for (HistoryEvent e : t.history()) {
            if (e.hasExecutionStarted()) {
                return e.getExecutionStarted().getOrchestrationInstance().getExecutionId().getValue();
            }
        }
        return "";
    }
}
