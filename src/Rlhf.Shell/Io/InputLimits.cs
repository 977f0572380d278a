namespace Rlhf.Shell.Io;

/// <summary>
/// The limits on model files, in one place: a file past one of them is refused with an error naming it, before it is
/// read into memory (data files: <see cref="Training.Data.DataLimits"/>; checkpoint manifests: <see cref="Engine.Checkpoint.MaxStateFileBytes"/>).
/// </summary>
public static class InputLimits
{
    /// <summary>Largest safetensors header (100 MB, the format's own limit in the reference implementation's <c>safetensors/src/tensor.rs</c>).</summary>
    public const long SafetensorsHeaderBytes = 100_000_000;

    /// <summary>Largest <c>config.json</c> read (16 MiB; real ones are a few KB).</summary>
    public const long ConfigJsonBytes = 16L << 20;

    /// <summary>Largest <c>model.safetensors.index.json</c> read (64 MiB; a 100k-tensor index is a few MB).</summary>
    public const long IndexJsonBytes = 64L << 20;

    /// <summary>Deepest JSON nesting accepted in these files (System.Text.Json's default, 64).</summary>
    public const int JsonDepth = 64;

    /// <summary>Largest layer count a <c>config.json</c> may name (one million: far past any real model, far below what exhausts memory while planning the layers).</summary>
    public const int Layers = 1_000_000;

    /// <summary>Reads a whole text file after checking its size against <paramref name="limit"/>; errors name the file.</summary>
    internal static string ReadText(string path, long limit, string what)
    {
        var length = new FileInfo(path).Length;
        if (length > limit) throw new HfFormatException(path, $"{length} bytes is larger than the {limit}-byte limit for {what} (InputLimits)");
        try { return File.ReadAllText(path, new System.Text.UTF8Encoding(false, throwOnInvalidBytes: true)); }
        catch (System.Text.DecoderFallbackException e) { throw new HfFormatException(path, "not valid UTF-8", e); }
    }
}
