// Starts DynamoDB Local listening on one address only (127.0.0.1 unless the
// system property llmchat.dynamodb.host names another). Its own entry point,
// ServerRunner, binds every interface and has no option to choose one; the
// table it serves holds API key hashes and messages, which nothing outside
// this machine should reach. Takes ServerRunner's arguments.

import java.lang.reflect.Field;

import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;

import software.amazon.dynamodb.services.local.main.CommandLineInput;
import software.amazon.dynamodb.services.local.main.ServerRunner;
import software.amazon.dynamodb.services.local.server.DynamoDBProxyServer;

public final class LoopbackServer {
    public static void main(String[] args) throws Exception {
        // -help and -version are answered here and start nothing, as with ServerRunner.
        if (!new CommandLineInput(args).init()) {
            return;
        }
        String host = System.getProperty("llmchat.dynamodb.host", "127.0.0.1");
        DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(args);
        // The Jetty server is built but not started yet: its connector can still
        // be given a host. A DynamoDB Local that no longer has this shape fails
        // here, loudly, rather than listening everywhere.
        Field field = DynamoDBProxyServer.class.getDeclaredField("server");
        field.setAccessible(true);
        Server server = (Server) field.get(proxy);
        int bound = 0;
        for (Connector connector : server.getConnectors()) {
            if (!(connector instanceof ServerConnector)) {
                throw new IllegalStateException("unexpected connector " + connector.getClass().getName());
            }
            ((ServerConnector) connector).setHost(host);
            bound++;
        }
        if (bound == 0) {
            throw new IllegalStateException("DynamoDB Local's server has no connector to bind");
        }
        proxy.start();
    }
}
