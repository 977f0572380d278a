using Rlhf.Torch;

namespace Rlhf.Shell.Training.Offline;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// Prompt + response rows packed for one forward, right-padded as TRL's collators pad them
/// (<c>DataCollatorForCompletionOnlyLM</c>, <c>DPODataCollatorWithPadding</c>): token ids, the attention mask, and the
/// mask of the positions whose next token is a response token — the completion-only loss mask, aligned with
/// <c>logprobs(logits[:, :-1], ids[:, 1:])</c>. A row longer than the length limit keeps its start (TRL truncates the
/// response's end).
/// </summary>
/// <param name="Ids">int64 [B, L] token ids (padding after each row's end).</param>
/// <param name="AttentionMask">int64 [B, L]: 1 on real tokens.</param>
/// <param name="ResponseMask">bool [B, L − 1]: position t is on when token t + 1 is a response token.</param>
/// <param name="Tokens">Real tokens in the batch (for throughput).</param>
public sealed record SequenceBatch(Tensor Ids, Tensor AttentionMask, Tensor ResponseMask, long Tokens)
{
    /// <summary>
    /// Packs <paramref name="rows"/> (prompt ids, response ids), each cut to <paramref name="maxLength"/> tokens, padded with
    /// <paramref name="padId"/>. <paramref name="lossOnPrompt"/> puts the prompt's tokens (after the first) in the response mask
    /// too (TRL <c>completion_only_loss=False</c>). Tensors are in the caller's scope, on <paramref name="device"/>.
    /// </summary>
    public static SequenceBatch Pack(IReadOnlyList<(int[] Prompt, int[] Response)> rows, int padId, long maxLength, Device device, bool lossOnPrompt = false)
    {
        if (rows.Count == 0) throw new ArgumentException("a batch needs at least one row", nameof(rows));
        if (maxLength < 2) throw new ArgumentOutOfRangeException(nameof(maxLength), maxLength, "a sequence needs at least two tokens (one to predict from, one to predict)");
        var lengths = rows.Select(r => (int)Math.Min(r.Prompt.Length + r.Response.Length, maxLength)).ToArray();
        var width = Math.Max(2, lengths.Max());
        var ids = new long[rows.Count * width];
        var attention = new long[rows.Count * width];
        var response = new bool[rows.Count * (width - 1)];
        long tokens = 0;
        for (var b = 0; b < rows.Count; b++)
        {
            var (prompt, resp) = rows[b];
            for (var t = 0; t < width; t++)
            {
                var real = t < lengths[b];
                ids[b * width + t] = !real ? padId : t < prompt.Length ? prompt[t] : resp[t - prompt.Length];
                attention[b * width + t] = real ? 1 : 0;
                if (t >= 1 && real && (t >= prompt.Length || lossOnPrompt)) response[b * (width - 1) + t - 1] = true;
            }
            tokens += lengths[b];
        }
        return new SequenceBatch(
            Torch.From(ids, rows.Count, width).To(device),
            Torch.From(attention, rows.Count, width).To(device),
            Torch.From(response, rows.Count, width - 1).To(device),
            tokens);
    }
}
