using System.Net.Sockets;

namespace PgEvents.Testing;

/// <summary>
/// Asks the Docker engine for <c>/_ping</c>. A docker CLI on PATH proves nothing: only an engine
/// that answers can start containers.
/// </summary>
internal static class DockerProbe
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(3);

    public static async Task<bool> IsEngineReachableAsync(CancellationToken cancellationToken)
    {
        var host = Environment.GetEnvironmentVariable("DOCKER_HOST");
        Uri endpoint;
        string? socketPath = null;
        if (string.IsNullOrEmpty(host))
        {
            socketPath = "/var/run/docker.sock";
            endpoint = new Uri("http://localhost/_ping");
        }
        else if (host.StartsWith("unix://", StringComparison.Ordinal))
        {
            socketPath = host["unix://".Length..];
            endpoint = new Uri("http://localhost/_ping");
        }
        else if (host.StartsWith("tcp://", StringComparison.Ordinal))
        {
            endpoint = new Uri("http://" + host["tcp://".Length..].TrimEnd('/') + "/_ping");
        }
        else
        {
            return false;
        }

        if (socketPath is not null && !File.Exists(socketPath))
        {
            return false;
        }

        using var handler = new SocketsHttpHandler();
        if (socketPath is not null)
        {
            handler.ConnectCallback = async (_, token) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), token).ConfigureAwait(false);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            };
        }

        using var client = new HttpClient(handler) { Timeout = Timeout };
        try
        {
            using var response = await client.GetAsync(endpoint, cancellationToken).ConfigureAwait(false);
            return response.IsSuccessStatusCode;
        }
        catch (Exception e) when (e is HttpRequestException or SocketException or TaskCanceledException or IOException)
        {
            return false;
        }
    }
}
