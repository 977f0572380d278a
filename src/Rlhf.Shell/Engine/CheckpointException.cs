namespace Rlhf.Shell.Engine;

/// <summary>A checkpoint that cannot be used (missing, truncated, corrupt or mixed-up file); the message names the file at fault.</summary>
public sealed class CheckpointException : IOException
{
    /// <summary>Creates the error for <paramref name="path"/>.</summary>
    public CheckpointException(string path, string problem, Exception? inner = null) : base($"{path}: {problem}", inner) => FilePath = path;

    /// <summary>The file or directory at fault.</summary>
    public string FilePath { get; }
}
