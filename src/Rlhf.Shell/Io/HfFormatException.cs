namespace Rlhf.Shell.Io;

/// <summary>A Hugging Face model directory or config that cannot be used; the message names the file and every problem found.</summary>
public sealed class HfFormatException : IOException
{
    /// <summary>Creates the error for <paramref name="path"/>.</summary>
    public HfFormatException(string path, string problem, Exception? inner = null) : base($"{path}: {problem}", inner) => FilePath = path;

    /// <summary>The file or directory at fault.</summary>
    public string FilePath { get; }
}
