using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json;
using MacVm.Engine.Drivers.Apple.Interop;

// Usage: MacVm.Bench.AppleBinding <libVirtualization.so> <result.json>
// Each case runs Iterations calls per run, Runs times; the figures are the median and the fastest run's
// ns per call (on a shared machine the fastest run is the closest to the call's own cost). Cases run
// interleaved in every round, so a busy machine slows them alike.
if (args.Length != 2)
{
    Console.Error.WriteLine("usage: MacVm.Bench.AppleBinding <fake libVirtualization.so> <result.json>");
    return 2;
}
Environment.SetEnvironmentVariable(AppleFramework.FrameworkVariable, Path.GetFullPath(args[0]));
AppleFramework.EnsureLoaded();
return Bench.Run(args[0], args[1]);

internal static unsafe class Bench
{
    private const int Iterations = 1_000_000;
    private const int Runs = 31;
    private static readonly JsonSerializerOptions s_json = new() { WriteIndented = true };

    public static int Run(string fake, string output)
    {
        var nop = (delegate* unmanaged<nint, nint>)NativeLibrary.GetExport(NativeLibrary.Load(fake), "VZFakeBenchNop");
        using var pool = NS.Pool();
        // A fake VZ object; -self is NSObject's (the fake does not log it), so the send is pure dispatch.
        var obj = NS.New("VZVirtualMachineConfiguration");
        var self = new Selector("self");
        var selHandle = self.Handle;
        var cls = ObjC.ClassOf(obj);

        var cases = new (string Name, Func<nint> Body)[]
        {
            ("direct C call (VZFakeBenchNop)", () =>
            {
                nint sum = 0;
                for (var i = 0; i < Iterations; i++) sum ^= nop(obj);
                return sum;
            }),
            ("message send through the binding (Msg.Id, cached IMP)", () =>
            {
                nint sum = 0;
                for (var i = 0; i < Iterations; i++) sum ^= Msg.Id(obj, self);
                return sum;
            }),
            ("message send, IMP looked up on every call", () =>
            {
                nint sum = 0;
                for (var i = 0; i < Iterations; i++)
                    sum ^= ((delegate* unmanaged<nint, nint, nint>)ObjC.MethodImplementation(cls, selHandle))(obj, selHandle);
                return sum;
            }),
        };
        foreach (var c in cases) c.Body(); // warm up (tiered JIT)
        foreach (var c in cases) c.Body();
        var samples = cases.Select(_ => new List<double>()).ToArray();
        for (var run = 0; run < Runs; run++)
        {
            for (var k = 0; k < cases.Length; k++)
            {
                var sw = Stopwatch.StartNew();
                GC.KeepAlive(cases[k].Body());
                samples[k].Add(sw.Elapsed.TotalNanoseconds / Iterations);
            }
        }
        NS.Release(obj);
        var results = cases.Select((c, k) => new
        {
            name = c.Name,
            medianNs = Math.Round(Median(samples[k]), 2),
            minNs = Math.Round(samples[k].Min(), 2),
            maxNs = Math.Round(samples[k].Max(), 2),
        }).ToArray();
        var baseline = results[0].medianNs;
        var report = new
        {
            benchmark = "apple-binding",
            machine = $"{Environment.MachineName}, {Environment.ProcessorCount} cores, {RuntimeInformation.OSDescription}, .NET {Environment.Version}",
            framework = fake,
            iterations = Iterations,
            runs = Runs,
            results,
            sendOverDirectCall = baseline > 0 ? Math.Round(results[1].medianNs / baseline, 2) : (double?)null,
            sendOverDirectCallFastestRuns = results[0].minNs > 0 ? Math.Round(results[1].minNs / results[0].minNs, 2) : (double?)null,
        };
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(output))!);
        File.WriteAllText(output, JsonSerializer.Serialize(report, s_json));
        foreach (var r in results) Console.WriteLine($"{r.name,-58} {r.medianNs,7:0.00} ns  (min {r.minNs:0.00}, max {r.maxNs:0.00})");
        Console.WriteLine($"send / direct C call: {report.sendOverDirectCall}x (medians), {report.sendOverDirectCallFastestRuns}x (fastest runs)   ({output})");
        return 0;
    }

    private static double Median(List<double> values)
    {
        var s = values.OrderBy(v => v).ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }
}
