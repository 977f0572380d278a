namespace Rlhf.Shell.Io.Tokenizers;

/// <summary>
/// GPT-2's reversible byte → printable-character map: bytes 33–126, 161–172 and 174–255 map to themselves, the
/// other 68 bytes to U+0100 + n in byte order (so space 0x20 is 'Ġ', newline 0x0A is 'Ċ').
/// </summary>
public static class ByteLevel
{
    /// <summary>Character of each byte.</summary>
    public static readonly char[] ByteToChar = Build();

    /// <summary>Byte of each mapped character.</summary>
    public static readonly IReadOnlyDictionary<char, byte> CharToByte =
        Enumerable.Range(0, 256).ToDictionary(b => ByteToChar[b], b => (byte)b);

    private static char[] Build()
    {
        var map = new char[256];
        var n = 0;
        for (var b = 0; b < 256; b++)
        {
            var printable = b is >= 33 and <= 126 or >= 161 and <= 172 or >= 174 and <= 255;
            map[b] = printable ? (char)b : (char)(256 + n++);
        }
        return map;
    }

    /// <summary>The mapped string of some bytes.</summary>
    public static string Encode(ReadOnlySpan<byte> bytes)
    {
        var chars = new char[bytes.Length];
        for (var i = 0; i < bytes.Length; i++) chars[i] = ByteToChar[bytes[i]];
        return new string(chars);
    }
}
