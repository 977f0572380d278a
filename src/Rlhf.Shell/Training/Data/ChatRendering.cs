using System.Text;

namespace Rlhf.Shell.Training.Data;

/// <summary>One chat message: a role (<c>system</c>, <c>user</c>, <c>assistant</c>, …) and its text.</summary>
public sealed record ChatMessage(string Role, string Content);

/// <summary>
/// The chat rendering used when the tokenizer brings no chat template (the byte tokenizer, or a tokenizer.json alone):
/// every message becomes <c>&lt;|ROLE|&gt;\nCONTENT\n</c>, and a prompt ends with the generation prompt
/// <c>&lt;|assistant|&gt;\n</c>, after which the model writes the assistant's content and then EOS. This is the shape of
/// Zephyr's template (HuggingFaceH4/zephyr-7b-beta <c>tokenizer_config.json</c>) with EOS only after the response, as
/// TRL appends it. Example: <c>[{user: "hi"}]</c> → <c>"&lt;|user|&gt;\nhi\n&lt;|assistant|&gt;\n"</c>.
/// </summary>
public static class ChatRendering
{
    /// <summary>The text that opens the assistant's turn.</summary>
    public const string GenerationPrompt = "<|assistant|>\n";

    /// <summary>The role of the model's own turns.</summary>
    public const string AssistantRole = "assistant";

    /// <summary>The messages rendered one after another, followed by the generation prompt.</summary>
    public static string RenderPrompt(IReadOnlyList<ChatMessage> messages)
    {
        var sb = new StringBuilder();
        foreach (var m in messages) sb.Append("<|").Append(m.Role).Append("|>\n").Append(m.Content).Append('\n');
        return sb.Append(GenerationPrompt).ToString();
    }
}
