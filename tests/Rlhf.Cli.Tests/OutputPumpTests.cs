using System.Text;
using Rlhf.Shell.Engine;

namespace Rlhf.Cli.Tests;

/// <summary>The launcher's line forwarding: whole lines as they are, long lines in bounded pieces cut between UTF-8 characters.</summary>
public class OutputPumpTests
{
    private static List<string> Pump(byte[] bytes, int chunk = 7)
    {
        var lines = new List<string>();
        WorkerProcess.Pump(new Trickle(bytes, chunk), lines.Add).Wait(TimeSpan.FromSeconds(30));
        return lines;
    }

    /// <summary>A stream that returns at most <c>chunk</c> bytes per read, as a pipe does.</summary>
    private sealed class Trickle(byte[] data, int chunk) : MemoryStream(data)
    {
        public override int Read(byte[] buffer, int offset, int count) => base.Read(buffer, offset, Math.Min(count, chunk));
    }

    [Fact]
    public void Lines_come_out_whole_without_their_newline_or_carriage_return_and_a_last_unterminated_line_too()
    {
        var lines = Pump(Encoding.UTF8.GetBytes("one\ntwo\r\n\nthree"));
        Assert.Equal(["one", "two", "", "three"], lines);
    }

    [Fact]
    public void A_line_longer_than_the_buffer_is_forwarded_in_pieces_that_never_split_a_character()
    {
        // 'é' is 2 bytes, '€' 3, '𝄞' 4: a piece boundary falls inside a character unless the pump backs off.
        var text = string.Concat(Enumerable.Repeat("aé€𝄞", 30_000));
        var lines = Pump(Encoding.UTF8.GetBytes(text + "\nafter\n"), chunk: 4093);
        Assert.Equal("after", lines[^1]);
        var pieces = lines[..^1];
        Assert.True(pieces.Count >= Encoding.UTF8.GetByteCount(text) / WorkerProcess.MaxLineBytes, $"{pieces.Count} pieces");
        Assert.All(pieces, p => Assert.True(Encoding.UTF8.GetByteCount(p) <= WorkerProcess.MaxLineBytes));
        Assert.All(pieces, p => Assert.DoesNotContain('\uFFFD', p));
        Assert.Equal(text, string.Concat(pieces));
    }
}
