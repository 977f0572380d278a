namespace Rlhf.Shell.Io;

/// <summary>A malformed, truncated or unsupported safetensors file; the message names the file and, where known, the tensor.</summary>
public sealed class SafetensorsException : IOException
{
    /// <summary>Creates the error for <paramref name="path"/> (and <paramref name="tensor"/> when one is at fault).</summary>
    public SafetensorsException(string path, string? tensor, string problem, Exception? inner = null)
        : base(tensor is null ? $"{path}: {problem}" : $"{path}: tensor '{tensor}': {problem}", inner)
    {
        FilePath = path;
        Tensor = tensor;
    }

    /// <summary>The file at fault.</summary>
    public string FilePath { get; }

    /// <summary>The tensor at fault, if the problem is in one entry.</summary>
    public string? Tensor { get; }
}
