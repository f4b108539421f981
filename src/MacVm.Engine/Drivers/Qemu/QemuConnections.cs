using System.Net.Sockets;
using System.Text.Json.Nodes;
using MacVm.Engine.Store;

namespace MacVm.Engine.Drivers.Qemu;

/// <summary>
/// The host's connections to one QEMU: its serial console, QMP, and the migrations driven over QMP.
/// Opened the same way by the VM object and by the host's first act on a restore (<see cref="QemuEarlyStart"/>),
/// which hands them over to the VM object.
/// </summary>
/// <param name="Qmp">The QMP connection.</param>
/// <param name="Migration">Saves and restores over it.</param>
/// <param name="Serial">The serial console (the guest's console output).</param>
internal sealed record QemuConnections(QmpClient Qmp, QemuMigration Migration, Socket Serial)
{
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(15);

    /// <summary>
    /// Connects to the serial console first (what the guest prints before anyone listens is lost), then
    /// to QMP. Every QMP event reaches the migration first, then <paramref name="onEvent"/>.
    /// </summary>
    public static async Task<QemuConnections> OpenAsync(VmPaths paths, QemuProcess qemu, Action<string, JsonObject?> onEvent, CancellationToken ct)
    {
        var alive = () => !qemu.Ended.IsCompleted;
        var serial = await UnixSocket.ConnectWithRetryAsync(paths.SerialSocket, ConnectTimeout, alive, ct).ConfigureAwait(false);
        try
        {
            QemuMigration? migration = null;
            var qmp = await QmpClient.ConnectAsync(paths.QmpSocket, (name, data) =>
            {
                migration?.OnEvent(name, data);
                onEvent(name, data);
            }, ConnectTimeout, alive, ct).ConfigureAwait(false);
            migration = new QemuMigration(qmp, qemu.Ended);
            return new QemuConnections(qmp, migration, serial);
        }
        catch
        {
            serial.Dispose();
            throw;
        }
    }
}
