using MacVm.Engine.HostProtocol;
using Xunit;

namespace MacVm.Tests.Unit;

public class HostRpcFormatterTests
{
    [Fact]
    public void AReadMessageOwnsItsBytesSoThePipeMayReuseItsMemoryAtOnce()
    {
        // NewLineDelimitedMessageHandler hands the formatter the pipe's memory and recycles it right after
        // Deserialize; the result is read later. Zeroing the buffer stands in for the pipe reusing it.
        var bytes = System.Text.Encoding.UTF8.GetBytes("{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"vmName\":\"web1\",\"width\":800,\"height\":500,\"format\":\"Jpeg\",\"data\":\"/9j/2Q==\"}}");
        var message = Assert.IsAssignableFrom<StreamJsonRpc.Protocol.JsonRpcResult>(ReadAsTheHandlerDoes(HostRpc.CreateFormatter(), bytes));
        Array.Clear(bytes);
        var result = message.GetResult<MacVmScreenshot>();
        Assert.Equal((800, 500, ScreenshotFormat.Jpeg), (result.Width, result.Height, result.Format));
        Assert.Equal(new byte[] { 0xFF, 0xD8, 0xFF, 0xD9 }, result.Data);
    }

    // The handler calls the formatter through this interface, and that call is what is under test.
#pragma warning disable CA1859
    private static StreamJsonRpc.Protocol.JsonRpcMessage ReadAsTheHandlerDoes(StreamJsonRpc.IJsonRpcMessageTextFormatter formatter, byte[] line) =>
        formatter.Deserialize(new System.Buffers.ReadOnlySequence<byte>(line), System.Text.Encoding.UTF8);
#pragma warning restore CA1859
}
