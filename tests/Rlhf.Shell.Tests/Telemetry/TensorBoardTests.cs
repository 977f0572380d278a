using System.Buffers.Binary;
using System.Text;
using Rlhf.Shell.Telemetry;
using Rlhf.Shell.Tests.Io;
using Rlhf.Tests.Shared;

namespace Rlhf.Shell.Tests.Telemetry;

/// <summary>TensorBoard event files read back by a reader written here from the format (TFRecord + Event protobuf), every CRC checked.</summary>
public class TensorBoardTests
{
    [Fact]
    public void Crc32c_of_the_standard_check_string()
    {
        Assert.Equal(0xE3069283u, TfEvents.Crc32C("123456789"u8));
        Assert.Equal(0xE3069283u, Rlhf.Shell.Telemetry.Crc32C.Compute("123456789"u8));
        Assert.Equal(0u, TfEvents.Crc32C([]));
    }

    private sealed record Value(string Tag, float SimpleValue);
    private sealed record Event(double WallTime, long? Step, string? FileVersion, List<Value> Values);

    private static Event Parse(byte[] m)
    {
        var e = new Event(double.NaN, null, null, []);
        foreach (var (field, wire, bytes, varint) in TfEvents.Fields(m))
        {
            switch (field)
            {
                case 1: Assert.Equal(1, wire); e = e with { WallTime = BinaryPrimitives.ReadDoubleLittleEndian(bytes) }; break;
                case 2: Assert.Equal(0, wire); e = e with { Step = (long)varint }; break;
                case 3: Assert.Equal(2, wire); e = e with { FileVersion = Encoding.UTF8.GetString(bytes) }; break;
                case 5:
                    Assert.Equal(2, wire);
                    foreach (var (vf, vw, vb, _) in TfEvents.Fields(bytes))
                    {
                        Assert.Equal((1, 2), (vf, vw));   // Summary.value
                        string? tag = null;
                        float? simple = null;
                        foreach (var (f, w, b, _) in TfEvents.Fields(vb))
                        {
                            if (f == 1) { Assert.Equal(2, w); tag = Encoding.UTF8.GetString(b); }
                            else if (f == 2) { Assert.Equal(5, w); simple = BinaryPrimitives.ReadSingleLittleEndian(b); }
                            else throw new Xunit.Sdk.XunitException($"unexpected Summary.Value field {f}");
                        }
                        e.Values.Add(new Value(tag!, simple!.Value));
                    }
                    break;
                default: throw new Xunit.Sdk.XunitException($"unexpected Event field {field}");
            }
        }
        return e;
    }

    private sealed class FixedClock(DateTimeOffset start) : TimeProvider
    {
        public DateTimeOffset Now = start;
        public override DateTimeOffset GetUtcNow() => Now;
    }

    [Fact]
    public void Events_parse_back_with_valid_crcs_and_every_value()
    {
        using var dir = new TempDir();
        var clock = new FixedClock(DateTimeOffset.FromUnixTimeMilliseconds(1_764_500_000_250));
        var steps = new[]
        {
            new MetricsRecord(5, 40, new Dictionary<string, double> { ["objective/kl"] = 0.125, ["objective/scores"] = -1.5, ["rewards/accuracies"] = 0.75 }),
            new MetricsRecord(10, 80, new Dictionary<string, double> { ["objective/kl"] = 0.3, ["loss/policy_avg"] = 1e-7, ["timing/generate_s"] = 12.5 }),
            new MetricsRecord(300, 2400, new Dictionary<string, double> { ["objective/kl"] = double.NaN }),
        };
        string path;
        using (var w = new TensorBoardWriter(dir.Path, clock, "testhost"))
        {
            path = w.Path;
            foreach (var s in steps)
            {
                clock.Now = clock.Now.AddSeconds(2);
                w.Write(s);
            }
        }
        Assert.Equal("events.out.tfevents.1764500000.testhost", Path.GetFileName(path));
        var events = TfEvents.Records(File.ReadAllBytes(path)).Select(Parse).ToList();
        Assert.Equal(1 + steps.Length, events.Count);
        Assert.Equal("brain.Event:2", events[0].FileVersion);
        Assert.Equal(1_764_500_000.25, events[0].WallTime);
        Assert.Null(events[0].Step);
        for (var k = 0; k < steps.Length; k++)
        {
            var e = events[k + 1];
            Assert.Null(e.FileVersion);
            Assert.Equal(steps[k].Step, e.Step);
            Assert.Equal(1_764_500_000.25 + 2 * (k + 1), e.WallTime);
            Assert.Equal(steps[k].Values.Select(kv => new Value(kv.Key, (float)kv.Value)), e.Values);
        }
    }

    [Fact]
    public void Each_record_is_on_disk_when_write_returns()
    {
        using var dir = new TempDir();
        using var w = new TensorBoardWriter(dir.Path, host: "h");
        w.Write(new MetricsRecord(1, 1, new Dictionary<string, double> { ["a"] = 1 }));
        using var read = new FileStream(w.Path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        var bytes = new byte[read.Length];
        read.ReadExactly(bytes);
        var events = TfEvents.Records(bytes).Select(Parse).ToList();
        Assert.Equal(2, events.Count);
        Assert.Equal(new Value("a", 1f), Assert.Single(events[1].Values));
    }
}
