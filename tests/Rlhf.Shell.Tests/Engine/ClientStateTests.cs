using Rlhf.Core.Models;
using Rlhf.Shell.Engine;
using Rlhf.Torch;

namespace Rlhf.Shell.Tests.Engine;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// DeepSpeed's <c>client_state</c>: files a trainer adds to a checkpoint (its step, data cursor, RNGs) are committed with the
/// shards, listed and checksummed in the manifest, read back verified, and a damaged one is refused naming the file.
/// </summary>
[Collection(MemoryCollection.Name)]
public class ClientStateTests
{
    private static readonly ModelConfig Tiny = ModelConfig.Llama(64, 32, 48, 1, 4, kvHeads: 2);

    private static (string Dir, string Tag) Saved(byte[] payload)
    {
        var dir = Path.Combine(Path.GetTempPath(), "rlhf-client-" + Guid.NewGuid().ToString("N")[..8]);
        using var e = new ZeroEngine(new TransformerLayers(Tiny, initStd: 0.2), TestEngines.Settings(1, mb: 2, gas: 1, persistence: 40, lr: 0.05), null, seed: 9, gradientCheckpointing: false);
        var tag = e.SaveCheckpoint(dir, clientState: tmp => File.WriteAllBytes(Path.Combine(tmp, "trainer_state.json"), payload));
        return (dir, tag);
    }

    [Fact]
    public void A_client_file_is_listed_in_the_manifest_and_read_back_verified()
    {
        var payload = System.Text.Encoding.UTF8.GetBytes("{\"step\": 7, \"cursor\": 12}");
        var (dir, tag) = Saved(payload);
        try
        {
            var state = Checkpoint.Verify(dir);
            Assert.Contains(state.Files!, f => f.Name == "trainer_state.json" && f.Bytes == payload.Length);
            Assert.Equal(payload, Checkpoint.ReadClientFile(dir, tag, "trainer_state.json"));
            Assert.Null(Checkpoint.ReadClientFile(dir, tag, "rollouts.pt"));
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void A_damaged_client_file_is_refused_naming_it()
    {
        var (dir, tag) = Saved(System.Text.Encoding.UTF8.GetBytes("{\"step\": 7}"));
        try
        {
            var path = Path.Combine(dir, tag, "trainer_state.json");
            File.WriteAllText(path, "{\"step\": 8}");
            var e = Assert.Throws<CheckpointException>(() => Checkpoint.ReadClientFile(dir, tag, "trainer_state.json"));
            Assert.Contains(path, e.Message);
            Assert.Throws<CheckpointException>(() => Checkpoint.Verify(dir));
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}
