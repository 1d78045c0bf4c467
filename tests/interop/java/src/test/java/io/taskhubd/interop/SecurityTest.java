package io.taskhubd.interop;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
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
import io.grpc.CallCredentials;
import io.grpc.CompositeChannelCredentials;
import io.grpc.Grpc;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.TlsChannelCredentials;
import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Executor;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * The Java SDK against a taskhubd secured with TLS, mutual TLS and a bearer token (docs/security.md): the right
 * credentials run an orchestration; a wrong or missing token is UNAUTHENTICATED; a missing client certificate or
 * an untrusted server fails the handshake (UNAVAILABLE). The channel comes from the page's Java block, held here
 * verbatim (docSnippetIsThisCode checks it). Certificates: tests/support/make-pki.sh (openssl) at run time.
 */
class SecurityTest {
    private static final Path ROOT = Paths.get(System.getProperty("user.dir")).resolve("../../..").normalize();
    private static final String TOKEN = "java-token-5c1e9a7f02d4b8e6";

    // ---- docs/security.md's Java block, verbatim ----
    /** A channel to taskhubd with TLS (mutual with clientCert/clientKey, PEM files) and a bearer token. */
    static ManagedChannel securedChannel(String target, File ca, File clientCert, File clientKey, String token)
            throws IOException {
        TlsChannelCredentials.Builder tls = TlsChannelCredentials.newBuilder().trustManager(ca);
        if (clientCert != null) {
            tls.keyManager(clientCert, clientKey);
        }
        CallCredentials bearer = new CallCredentials() {
            @Override
            public void applyRequestMetadata(RequestInfo info, Executor executor, MetadataApplier applier) {
                Metadata md = new Metadata();
                md.put(Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER), "Bearer " + token);
                applier.apply(md);
            }
        };
        return Grpc.newChannelBuilder(target, CompositeChannelCredentials.create(tls.build(), bearer)).build();
    }

    // ManagedChannel channel = securedChannel("taskhubd.example:4001", new File("ca.pem"),
    //     new File("client.pem"), new File("client.key"), token);
    // DurableTaskGrpcWorker worker = new DurableTaskGrpcWorkerBuilder().grpcChannel(channel) ... .build();
    // DurableTaskClient client = new DurableTaskGrpcClientBuilder().grpcChannel(channel).build();
    // ---- end of the block ----

    @Test
    void docSnippetIsThisCode() throws IOException {
        String page = Files.readString(ROOT.resolve("docs/security.md"), StandardCharsets.UTF_8);
        Matcher m = Pattern.compile("(?s)<!-- file: SecuredChannel.java -->\\s*```java\\n(.*?)```\\n").matcher(page);
        assertTrue(m.find(), "docs/security.md has no block marked SecuredChannel.java");
        String self = Files.readString(ROOT.resolve(
                "tests/interop/java/src/test/java/io/taskhubd/interop/SecurityTest.java"), StandardCharsets.UTF_8);
        assertTrue(self.contains(m.group(1)), "docs/security.md's Java block differs from the code this test runs");
    }

    private static Status.Code codeOf(Throwable e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof StatusRuntimeException) {
                return ((StatusRuntimeException) t).getStatus().getCode();
            }
        }
        throw new AssertionError("not a gRPC status error", e);
    }

    @Test
    void securedTaskhubd() throws Exception {
        Path dir = Files.createTempDirectory("th-java-sec-");
        Path pki = dir.resolve("pki");
        Process mk = new ProcessBuilder("bash", ROOT.resolve("tests/support/make-pki.sh").toString(), pki.toString())
                .inheritIO().start();
        assertEquals(0, mk.waitFor(), "make-pki.sh");
        Path tokens = dir.resolve("tokens");
        Files.writeString(tokens, "# tokens\n" + TOKEN + "\n");
        File ca = pki.resolve("ca.pem").toFile();
        File cert = pki.resolve("client.pem").toFile();
        File key = pki.resolve("client.key").toFile();
        List<ManagedChannel> channels = new ArrayList<>();
        try (Taskhubd server = Taskhubd.start("SecurityTest", "--tls-cert", pki.resolve("server.pem").toString(),
                "--tls-key", pki.resolve("server.key").toString(), "--tls-client-ca", ca.toString(),
                "--auth-token-file", tokens.toString())) {
            String target = "127.0.0.1:" + server.port; // the certificate lists 127.0.0.1
            ManagedChannel workerChannel = securedChannel(target, ca, cert, key, TOKEN);
            ManagedChannel clientChannel = securedChannel(target, ca, cert, key, TOKEN);
            channels.add(workerChannel);
            channels.add(clientChannel);
            DurableTaskGrpcWorker worker = new DurableTaskGrpcWorkerBuilder()
                    .grpcChannel(workerChannel)
                    .addOrchestration(new TaskOrchestrationFactory() {
                        @Override
                        public String getName() {
                            return "Greet";
                        }

                        @Override
                        public TaskOrchestration create() {
                            return ctx -> ctx.complete(
                                    ctx.callActivity("Hello", ctx.getInput(String.class), String.class).await());
                        }
                    })
                    .addActivity(new TaskActivityFactory() {
                        @Override
                        public String getName() {
                            return "Hello";
                        }

                        @Override
                        public TaskActivity create() {
                            return ctx -> "Hello, " + ctx.getInput(String.class) + "!";
                        }
                    })
                    .build();
            // startAndBlock on a daemon thread of ours: see Env for why.
            Thread workerThread = new Thread(worker::startAndBlock, "durabletask-worker-security");
            workerThread.setDaemon(true);
            workerThread.start();
            try {
                DurableTaskClient client = new DurableTaskGrpcClientBuilder().grpcChannel(clientChannel).build();
                String id = client.scheduleNewOrchestrationInstance("Greet", "Java");
                OrchestrationMetadata md = client.waitForInstanceCompletion(id, Duration.ofSeconds(60), true);
                assertNotNull(md);
                assertEquals(OrchestrationRuntimeStatus.COMPLETED, md.getRuntimeStatus(),
                        () -> Taskhubd.tail(server.log, 40));
                assertEquals("\"Hello, Java!\"", md.getSerializedOutput());

                // A wrong token, and none (an empty one sends "Bearer "): UNAUTHENTICATED.
                for (String bad : new String[] {TOKEN + "x", ""}) {
                    ManagedChannel ch = securedChannel(target, ca, cert, key, bad);
                    channels.add(ch);
                    DurableTaskClient c = new DurableTaskGrpcClientBuilder().grpcChannel(ch).build();
                    try {
                        c.getInstanceMetadata(id, false);
                        fail("a call with token '" + bad + "' was answered");
                    } catch (RuntimeException e) {
                        assertEquals(Status.Code.UNAUTHENTICATED, codeOf(e), e.toString());
                    }
                }
                // The handshake refuses a client without a certificate, and a client that does not trust the server.
                File[][] refused = {{ca, null, null}, {pki.resolve("other-ca.pem").toFile(), cert, key}};
                for (File[] r : refused) {
                    ManagedChannel ch = securedChannel(target, r[0], r[1], r[2], TOKEN);
                    channels.add(ch);
                    DurableTaskClient c = new DurableTaskGrpcClientBuilder().grpcChannel(ch).build();
                    try {
                        c.getInstanceMetadata(id, false);
                        fail("a call over a refused handshake was answered");
                    } catch (RuntimeException e) {
                        assertEquals(Status.Code.UNAVAILABLE, codeOf(e), e.toString());
                    }
                }
            } finally {
                for (ManagedChannel ch : channels) {
                    ch.shutdownNow();
                }
                workerThread.interrupt();
                workerThread.join(TimeUnit.SECONDS.toMillis(30));
                for (ManagedChannel ch : channels) {
                    ch.awaitTermination(10, TimeUnit.SECONDS);
                }
            }
        }
    }
}
