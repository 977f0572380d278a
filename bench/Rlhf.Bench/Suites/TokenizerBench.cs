using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;
using Rlhf.Shell.Io.Tokenizers;
using MlBpe = Microsoft.ML.Tokenizers.BpeTokenizer;

namespace Rlhf.Bench;

/// <summary>
/// The hand-written byte-level BPE beside Hugging Face <c>tokenizers</c> itself (the reference for ids) and
/// Microsoft.ML.Tokenizers 2.0.1's <c>BpeTokenizer</c> (byte-level options, fed the same vocabulary and merges, and the
/// same pre-tokenizer regex): identical ids? encode throughput (MB of UTF-8 per CPU-second)? The corpus is
/// generated (seeded) in many scripts, with letters and digits beyond the BMP and long words; the merges are trained
/// on it so that most pre-tokens merge deeply.
/// </summary>
public sealed class TokenizerBench : IBenchSuite
{
    /// <inheritdoc />
    public string Name => "tokenizer";

    /// <inheritdoc />
    public string Description => "byte-level BPE encode: Rlhf vs Hugging Face tokenizers (Rust) vs Microsoft.ML.Tokenizers BpeTokenizer: identical ids and MB/s";

    private static readonly string[] Words =
    [
        "the", "of", "and", "training", "reward", "policy", "gradient", "model", "token", "learning", "value", "advantage",
        "Sprache", "Größe", "über", "naïve", "café", "déjà", "niño", "año", "mañana",
        "обучение", "модель", "награда", "политика", "градиент",
        "μάθηση", "μοντέλο", "ανταμοιβή",
        "学习", "模型", "奖励", "策略", "梯度", "强化学习", "语言模型",
        "学習", "モデル", "トークン", "ひらがな",
        "학습", "모델", "보상",
        "تعلم", "نموذج", "مكافأة",
        "सीखना", "मॉडल", "इनाम",
        "𝐀𝐁𝐂", "𝐱𝐲𝐳", "𝔸𝔹ℂ", "𠀀𠀁", "𐌰𐌱𐌲", "𐐀𐐨", "𝟏𝟐𝟑", "😀", "👍🏽", "🚀", "❤️",
        "Supercalifragilisticexpialidocious", "pneumonoultramicroscopicsilicovolcanoconiosis", "antidisestablishmentarianism",
        "12345", "3.14159", "2026", "1,000,000", "$5.99", "100%", "'s", "'ll", "don't", "it's", "\n", "\n\n", "  ", "\t", "!", "?", ",", ".", "—",
    ];

    /// <summary>Code-point ranges of the scripts random words are drawn from (BMP and beyond).</summary>
    private static readonly (int First, int Last)[] Scripts =
    [
        (0x61, 0x7A), (0x61, 0x7A), (0x61, 0x7A), (0x41, 0x5A), (0xE0, 0xFF), (0x430, 0x44F), (0x3B1, 0x3C9), (0x4E00, 0x4FFF),
        (0x3041, 0x3093), (0xAC00, 0xAC80), (0x627, 0x64A), (0x915, 0x939), (0x30, 0x39),
        (0x1D400, 0x1D433), (0x1D7CE, 0x1D7FF), (0x20000, 0x2007F), (0x10330, 0x1034A), (0x1F600, 0x1F64F),
    ];

    /// <summary>
    /// A seeded text of about <paramref name="chars"/> UTF-16 units: frequent words from a list, and random words of
    /// geometric length in many scripts (so the vocabulary has a long tail), now and then a very long word.
    /// </summary>
    public static string Corpus(int chars, int seed)
    {
        var rng = new Random(seed);
        var sb = new StringBuilder(chars + 64);
        while (sb.Length < chars)
        {
            string w;
            if (rng.Next(2) == 0) w = Words[rng.Next(Words.Length)];
            else
            {
                var (first, last) = Scripts[rng.Next(Scripts.Length)];
                var word = new StringBuilder();
                do word.Append(char.ConvertFromUtf32(rng.Next(first, last + 1))); while (rng.Next(5) != 0);
                w = word.ToString();
            }
            if (rng.Next(200) == 0) w = string.Concat(Enumerable.Repeat(w, 50));     // an occasional very long word
            sb.Append(rng.Next(4) == 0 ? "" : " ").Append(w);
        }
        return sb.ToString();
    }

    /// <summary>
    /// Trains <paramref name="count"/> merges on the pre-tokens of <paramref name="text"/> (word counts, the most frequent
    /// adjacent pair first, ties by ordinal order) — only to give both tokenizers a realistic merge table.
    /// </summary>
    public static (Dictionary<string, int> Vocab, List<(string, string)> Merges) Train(string text, ByteLevelBpeTokenizer preTokenizer, int count)
    {
        var words = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var p in preTokenizer.PreTokenize(text))
        {
            var mapped = ByteLevel.Encode(Encoding.UTF8.GetBytes(p));
            words[mapped] = words.GetValueOrDefault(mapped) + 1;
        }
        var split = words.Select(kv => (Symbols: kv.Key.Select(c => c.ToString()).ToList(), Count: kv.Value)).ToList();
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var b = 0; b < 256; b++) vocab[ByteLevel.ByteToChar[b].ToString()] = b;
        var merges = new List<(string, string)>();
        while (merges.Count < count)
        {
            var pairs = new Dictionary<(string, string), int>();
            foreach (var (symbols, n) in split)
                for (var i = 0; i + 1 < symbols.Count; i++) { var k = (symbols[i], symbols[i + 1]); pairs[k] = pairs.GetValueOrDefault(k) + n; }
            if (pairs.Count == 0) break;
            var best = pairs.MaxBy(kv => kv.Value).Key;
            merges.Add(best);
            vocab.TryAdd(best.Item1 + best.Item2, vocab.Count);
            foreach (var (symbols, _) in split)
                for (var i = 0; i + 1 < symbols.Count; i++)
                    if (symbols[i] == best.Item1 && symbols[i + 1] == best.Item2) { symbols[i] += symbols[i + 1]; symbols.RemoveAt(i + 1); }
        }
        return (vocab, merges);
    }

    /// <inheritdoc />
    public int Run(string[] args)
    {
        var mergeCount = args.Length > 0 ? int.Parse(args[0]) : 2000;
        var sizeChars = args.Length > 1 ? int.Parse(args[1]) : 2_000_000;
        var pattern = PreTokenizerPatterns.Qwen2;   // Qwen2's regex; no ignore_merges (Microsoft.ML's BpeTokenizer has no such option)
        var plain = new ByteLevelBpeTokenizer(ByteVocab(), [], preTokenizers: [new SplitPreTokenizer(pattern, true), new ByteLevelPreTokenizer(false, false)]);
        var clock = Stopwatch.StartNew();
        var (vocab, merges) = Train(Corpus(100_000, 1), plain, mergeCount);
        Console.WriteLine($"trained {merges.Count} merges ({vocab.Count} tokens) in {clock.Elapsed.TotalSeconds:F1} s");

        var ours = new ByteLevelBpeTokenizer(vocab, merges, preTokenizers: [new SplitPreTokenizer(pattern, true), new ByteLevelPreTokenizer(false, false)]);
        // Microsoft.ML gets the same regex in two forms: as .NET reads it (what a user would write), and our full
        // scalar-value translation (so that pre-tokens agree and only the BPE cores are compared).
        var asWritten = new Regex(pattern, RegexOptions.Compiled | RegexOptions.CultureInvariant);
        var translated = new Regex(PreTokenizerPatterns.ToDotNetPattern(pattern), RegexOptions.Compiled | RegexOptions.CultureInvariant);
        MlBpe Ml(Regex re) => MlBpe.Create(new BpeOptions(vocab)
        {
            Merges = merges.Select(m => $"{m.Item1} {m.Item2}"),
            ByteLevel = true,
            PreTokenizer = new RegexPreTokenizer(re, null),
        });
        var mlWritten = Ml(asWritten);
        var mlTranslated = Ml(translated);

        // The anchor itself: Hugging Face tokenizers (Rust, 0.22.2 inside Tokenizers.DotNet 1.4.1) reading the same tokenizer.json.
        var file = Path.Combine(Path.GetTempPath(), $"rlhf-bench-tokenizer-{Environment.ProcessId}.json");
        File.WriteAllText(file, TokenizerJson(vocab, merges, pattern));
        using var hf = new Tokenizers.DotNet.Tokenizer(file);
        File.Delete(file);

        var text = Corpus(sizeChars, 2);
        var bmpOnly = new string(text.Where(c => !char.IsSurrogate(c)).ToArray());
        var lines = text.Split('\n');
        var table = new Table("tokenizer", "ids identical (all text)", "ids identical (BMP only)", "encode MB per CPU-second", "note");
        double Mbps(Func<string, int> encode, string s)
        {
            encode(s[..Math.Min(s.Length, 100_000)]);          // warm up (JIT, caches)
            // Process CPU time, not wall time: the machine may be shared, and encoding is single-threaded.
            var best = double.MaxValue;
            for (var r = 0; r < 3; r++)
            {
                var cpu = Process.GetCurrentProcess().TotalProcessorTime;
                encode(s);
                best = Math.Min(best, (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds);
            }
            return Encoding.UTF8.GetByteCount(s) / 1e6 / best;
        }
        string Same(Func<string, int[]> a, Func<string, int[]> b, IEnumerable<string> docs)
        {
            int total = 0, same = 0;
            foreach (var d in docs) { total++; if (a(d).SequenceEqual(b(d))) same++; }
            return $"{same}/{total} lines";
        }
        int[] Hf(string s) => hf.Encode(s).Select(i => (int)i).ToArray();
        table.Row("Hugging Face tokenizers 0.22.2 (Rust)", "reference", "reference", Mbps(s => hf.Encode(s).Length, text).ToString("F2"), "the anchor, through Tokenizers.DotNet 1.4.1 (P/Invoke)");
        table.Row("Rlhf ByteLevelBpeTokenizer", Same(Hf, s => ours.Encode(s), lines), Same(Hf, s => ours.Encode(s), bmpOnly.Split('\n')),
            Mbps(s => ours.Encode(s).Length, text).ToString("F2"), "regex over scalar values, heap BPE, pre-token cache");
        table.Row("Microsoft.ML BpeTokenizer, regex as written", Same(Hf, s => mlWritten.EncodeToIds(s).ToArray(), lines),
            Same(Hf, s => mlWritten.EncodeToIds(s).ToArray(), bmpOnly.Split('\n')), Mbps(s => mlWritten.EncodeToIds(s).Count, text).ToString("F2"), ".NET regex: astral letters/digits are not \\p{L}/\\p{N}");
        table.Row("Microsoft.ML BpeTokenizer, translated regex", Same(Hf, s => mlTranslated.EncodeToIds(s).ToArray(), lines),
            Same(Hf, s => mlTranslated.EncodeToIds(s).ToArray(), bmpOnly.Split('\n')), Mbps(s => mlTranslated.EncodeToIds(s).Count, text).ToString("F2"), "fed Rlhf's scalar-value translation of the regex");
        Console.WriteLine($"corpus: {text.Length:N0} UTF-16 units, {Encoding.UTF8.GetByteCount(text):N0} UTF-8 bytes, {lines.Length:N0} lines; {merges.Count} merges");
        table.Print();
        return 0;
    }

    /// <summary>A Qwen2-shaped tokenizer.json (Split by <paramref name="pattern"/>, ByteLevel, no post-processor) over the given vocabulary and merges.</summary>
    private static string TokenizerJson(Dictionary<string, int> vocab, List<(string, string)> merges, string pattern)
    {
        var root = new System.Text.Json.Nodes.JsonObject
        {
            ["version"] = "1.0", ["added_tokens"] = new System.Text.Json.Nodes.JsonArray(), ["normalizer"] = null,
            ["pre_tokenizer"] = System.Text.Json.Nodes.JsonNode.Parse($$"""
                {"type": "Sequence", "pretokenizers": [
                  {"type": "Split", "pattern": {"Regex": {{System.Text.Json.JsonSerializer.Serialize(pattern)}}}, "behavior": "Isolated", "invert": false},
                  {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}]}
                """),
            ["post_processor"] = null,
            ["decoder"] = System.Text.Json.Nodes.JsonNode.Parse("""{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}"""),
            ["model"] = new System.Text.Json.Nodes.JsonObject
            {
                ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = null, ["continuing_subword_prefix"] = null, ["end_of_word_suffix"] = null,
                ["fuse_unk"] = false, ["byte_fallback"] = false, ["ignore_merges"] = false,
                ["vocab"] = new System.Text.Json.Nodes.JsonObject(vocab.Select(kv => KeyValuePair.Create(kv.Key, (System.Text.Json.Nodes.JsonNode?)kv.Value))),
                ["merges"] = new System.Text.Json.Nodes.JsonArray(merges.Select(m => (System.Text.Json.Nodes.JsonNode)new System.Text.Json.Nodes.JsonArray(m.Item1, m.Item2)).ToArray()),
            },
        };
        return root.ToJsonString();
    }

    private static Dictionary<string, int> ByteVocab()
    {
        var v = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var b = 0; b < 256; b++) v[ByteLevel.ByteToChar[b].ToString()] = b;
        return v;
    }
}
