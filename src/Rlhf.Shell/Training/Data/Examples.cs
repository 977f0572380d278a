namespace Rlhf.Shell.Training.Data;

/// <summary>A prompt as text (the online algorithms' data; a conversation is already rendered).</summary>
public sealed record PromptText(string Prompt);

/// <summary>A prompt and its target completion as text (SFT).</summary>
public sealed record CompletionText(string Prompt, string Completion);

/// <summary>A prompt with a preferred and a dispreferred response as text (reward model, offline DPO).</summary>
public sealed record PreferenceText(string Prompt, string Chosen, string Rejected);

/// <summary>A tokenised prompt: its text and ids (BOS first when the tokenizer settings add it, left-truncated).</summary>
public sealed record PromptExample(string PromptText, int[] PromptIds);

/// <summary>A tokenised SFT example: prompt ids, and completion ids ending with EOS (the loss is on completion tokens only).</summary>
public sealed record CompletionExample(string PromptText, int[] PromptIds, string CompletionText, int[] CompletionIds);

/// <summary>A tokenised preference pair: prompt ids, and chosen and rejected ids each ending with EOS.</summary>
public sealed record PreferenceExample(string PromptText, int[] PromptIds, string ChosenText, int[] ChosenIds, string RejectedText, int[] RejectedIds);
