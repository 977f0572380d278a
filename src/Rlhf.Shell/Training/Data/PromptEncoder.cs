using Rlhf.Shell.Io.Tokenizers;

namespace Rlhf.Shell.Training.Data;

/// <summary>
/// Texts to token ids with the model's tokenizer, as TRL's trainers prepare them: a prompt is BOS (when
/// <c>tokenizer.add_bos_token</c> and the tokenizer has one) followed by the prompt's tokens, then left-truncated to
/// <c>data.max_prompt_length</c> (TRL <c>DPOTrainer.tokenize_row</c>: <c>prompt_input_ids[-max_prompt_length:]</c>, so
/// a long prompt keeps its end, next to the response, and loses its BOS); a response is its tokens followed by EOS.
/// </summary>
public sealed class PromptEncoder
{
    /// <summary>An encoder over <paramref name="tokenizer"/>.</summary>
    public PromptEncoder(ITokenizer tokenizer, int maxPromptLength, bool addBos)
    {
        if (maxPromptLength < 1) throw new ArgumentOutOfRangeException(nameof(maxPromptLength), maxPromptLength, "data.max_prompt_length must be at least 1");
        Tokenizer = tokenizer;
        MaxPromptLength = maxPromptLength;
        AddBos = addBos && tokenizer.BosId is not null;
        if (tokenizer.EosId is null) throw new ArgumentException("the tokenizer has no EOS token: responses need one to mark their end", nameof(tokenizer));
    }

    /// <summary>The encoder the settings describe: <c>data.max_prompt_length</c> and <c>tokenizer.add_bos_token</c>.</summary>
    public static PromptEncoder From(ITokenizer tokenizer, Rlhf.Settings.DataSettings data, Rlhf.Settings.TokenizerSettings settings) =>
        new(tokenizer, checked((int)data.MaxPromptLength), settings.AddBosToken);

    /// <summary>The tokenizer.</summary>
    public ITokenizer Tokenizer { get; }

    /// <summary>Longest prompt in tokens.</summary>
    public int MaxPromptLength { get; }

    /// <summary>Whether prompts start with BOS.</summary>
    public bool AddBos { get; }

    /// <summary>BOS (if added) + the prompt's tokens, keeping the last <see cref="MaxPromptLength"/>.</summary>
    public int[] EncodePrompt(string prompt)
    {
        var ids = Tokenizer.Encode(prompt);
        if (AddBos) ids = [Tokenizer.BosId!.Value, .. ids];
        return ids.Length <= MaxPromptLength ? ids : ids[^MaxPromptLength..];
    }

    /// <summary>The response's tokens followed by EOS.</summary>
    public int[] EncodeResponse(string response) => [.. Tokenizer.Encode(response), Tokenizer.EosId!.Value];

    /// <summary>A tokenised prompt.</summary>
    public PromptExample Encode(PromptText p) => new(p.Prompt, EncodePrompt(p.Prompt));

    /// <summary>A tokenised SFT example.</summary>
    public CompletionExample Encode(CompletionText c) => new(c.Prompt, EncodePrompt(c.Prompt), c.Completion, EncodeResponse(c.Completion));

    /// <summary>A tokenised preference pair.</summary>
    public PreferenceExample Encode(PreferenceText p) =>
        new(p.Prompt, EncodePrompt(p.Prompt), p.Chosen, EncodeResponse(p.Chosen), p.Rejected, EncodeResponse(p.Rejected));
}
