namespace Rlhf.Bench;

/// <summary>A plain aligned text table, the output format of every suite.</summary>
public sealed class Table(params string[] headers)
{
    private readonly List<string[]> rows = new();

    /// <summary>Adds a row (cells in header order).</summary>
    public Table Row(params object[] cells)
    {
        rows.Add(cells.Select(c => c switch { double d => d.ToString("G4"), _ => c?.ToString() ?? "" }).ToArray());
        return this;
    }

    /// <summary>Prints the table to standard output.</summary>
    public void Print()
    {
        var w = headers.Select((h, i) => Math.Max(h.Length, rows.Count == 0 ? 0 : rows.Max(r => i < r.Length ? r[i].Length : 0))).ToArray();
        Console.WriteLine(string.Join("  ", headers.Select((h, i) => h.PadRight(w[i]))));
        Console.WriteLine(string.Join("  ", w.Select(x => new string('-', x))));
        foreach (var r in rows) Console.WriteLine(string.Join("  ", r.Select((c, i) => c.PadRight(w[i]))));
    }
}
