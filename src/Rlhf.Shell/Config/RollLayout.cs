using Rlhf.Settings;
using YamlDotNet.RepresentationModel;

namespace Rlhf.Shell.Config;

/// <summary>A key of a ROLL config that means nothing here: its group (why), its key path and where it was written.</summary>
public sealed record IgnoredKey(string Group, string KeyPath, string File, int Line, int Column);

/// <summary>
/// The parts of a ROLL config (alibaba/ROLL, roll/configs/base_config.py and worker_config.py) that are about ROLL's own
/// machinery rather than the training: Hydra, Ray workers, trackers, LoRA, Megatron, data templates, pipeline options
/// this program does not implement. The loader takes them out of the tree before binding and reports them once, grouped
/// (<see cref="Describe"/>); with <c>--strict</c> each is an error. Any other unknown key is still an error with
/// "did you mean". Two ROLL shapes are rewritten here because they are shapes, not names: an inference role's
/// <c>strategy_config</c> under <c>strategy_name: vllm</c>/<c>sglang</c> holds vLLM's engine keys, which join the role's
/// <c>generating_args</c> (generator settings); and <c>rewards: {domain: worker}</c> names the reward function.
/// </summary>
public static class RollLayout
{
    /// <summary>The ROLL worker roles (a pattern's <c>{role}</c> segment matches any of them).</summary>
    public static readonly IReadOnlyList<string> Roles = ["actor_train", "actor_infer", "reference", "critic", "reward"];

    /// <summary>Ignored keys by group: key paths where <c>{role}</c> is a worker role and <c>*</c> any key.</summary>
    public static readonly IReadOnlyList<(string Group, string[] Patterns)> Ignored =
    [
        ("Hydra, Ray and the cluster (this program is launched by rlhf launch or torchrun)",
        [
            "hydra", "num_gpus_per_node", "num_nodes", "rpc_timeout", "system_envs", "local_rank", "model_download_type",
            "model_update_buffer_size_mb", "is_offload_states", "is_offload_optimizer_states_in_train_step", "base_dir",
            "{role}.worker_cls", "{role}.system_envs", "{role}.num_gpus_per_worker", "{role}.world_size", "{role}.name",
            "{role}.max_concurrency", "{role}.offload_nccl", "{role}.pg_variant",
        ]),
        ("trackers, profilers and dumps (metrics go to logging.*)",
        [
            "track_with", "tracker_kwargs", "logging_dir", "profiler_timeline", "profiler_memory", "profiler_output_dir",
            "length_profiler_dir", "report_length_and_rewards", "rollout_dump_dir", "rollout_mock",
        ]),
        ("LoRA (full-parameter training only)",
        [
            "{role}.model_args.lora_rank", "{role}.model_args.lora_alpha", "{role}.model_args.lora_dropout",
            "{role}.model_args.lora_target", "{role}.model_args.adapter_name_or_path",
        ]),
        ("Megatron (ZeRO only)",
        [
            "{role}.strategy_args.strategy_config.tensor_model_parallel_size", "{role}.strategy_args.strategy_config.pipeline_model_parallel_size",
            "{role}.strategy_args.strategy_config.virtual_pipeline_model_parallel_size", "{role}.strategy_args.strategy_config.context_parallel_size",
            "{role}.strategy_args.strategy_config.expert_model_parallel_size", "{role}.strategy_args.strategy_config.sequence_parallel",
            "{role}.strategy_args.strategy_config.use_distributed_optimizer", "{role}.strategy_args.strategy_config.recompute_granularity",
        ]),
        ("data templates and routing (prompts come from data.*)",
        ["{role}.data_args", "validation", "val_batch_size", "val_prompt_length", "val_sequence_length", "sequence_length"]),
        ("ROLL reward workers (the domain's name names the reward function)", ["rewards.*.*"]),
        ("model loading options that change nothing on this build",
        ["{role}.model_args.flash_attn", "{role}.model_args.ulysses_size"]),
        ("ROLL's generation scheduler",
        [
            "generate_opt_level", "is_num_return_sequences_expand", "max_running_requests", "is_use_additional_prompts",
            "max_additional_running_prompts", "user_defined_rollout_loop_cls", "async_generation_ratio", "max_ckpt_to_keep",
        ]),
        ("ROLL loss, normalisation and filtering options not implemented here",
        [
            "pg_variant", "whiten_advantages", "whiten_rewards", "norm_mean_type", "norm_std_type", "advantage_clip", "dual_clip_loss",
            "add_token_level_kl", "add_len_reward", "use_reward_scaling", "use_reward_norm", "max_len_mask", "difficulty_mask",
            "difficulty_low_threshold", "difficulty_high_threshold", "error_max_len_clip", "difficulty_loss_weight",
            "length_loss_weight", "loss_agg_mode", "entropy_loss_coef", "critic_warmup", "target_kl", "kl_horizon", "l2",
            "enable_reference", "enable_old_logprobs_recompute", "force_disable_old_logprobs_recompute", "train_infer_correction",
        ]),
    ];

    /// <summary>Takes ROLL's shapes and ignored keys out of a composed, interpolated tree; collects the ignored keys.</summary>
    internal static void Apply(YamlMappingNode root, NodeSources sources, List<ConfigError> errors, List<IgnoredKey> ignored)
    {
        RemoveIgnored(root, "", sources, ignored);
        foreach (var role in Roles) InferenceStrategyConfig(root, role, sources, errors);
        Rewards(root, sources, errors);
    }

    private static bool Matches(string pattern, string path)
    {
        var p = pattern.Split('.');
        var k = path.Split('.');
        if (p.Length != k.Length) return false;
        for (var i = 0; i < p.Length; i++)
            if (!(p[i] == k[i] || p[i] == "*" || (p[i] == "{role}" && Roles.Contains(k[i])))) return false;
        return true;
    }

    /// <summary>The group of an ignored key path, or null when the path is not one.</summary>
    public static string? GroupOf(string path)
    {
        foreach (var (group, patterns) in Ignored)
            if (patterns.Any(p => Matches(p, path))) return group;
        return null;
    }

    private static void RemoveIgnored(YamlMappingNode map, string path, NodeSources sources, List<IgnoredKey> ignored)
    {
        foreach (var kv in map.Children.ToList())
        {
            if (kv.Key is not YamlScalarNode { Value: { } key }) continue;
            var p = path.Length == 0 ? key : $"{path}.{key}";
            if (GroupOf(p) is { } group)
            {
                var at = sources.Locate(kv.Key);
                ignored.Add(new IgnoredKey(group, p, at.File, at.Line, at.Column));
                map.Children.Remove(kv.Key);
            }
            else if (kv.Value is YamlMappingNode inner) RemoveIgnored(inner, p, sources, ignored);
        }
    }

    /// <summary>
    /// <c>strategy_name: vllm</c> (or <c>sglang</c>): the strategy_config holds vLLM's engine keys (SGLang's
    /// <c>mem_fraction_static</c> is its name of <c>gpu_memory_utilization</c>); they are generator settings, so they join
    /// the role's <c>generating_args</c>. A key in both is an error naming both.
    /// </summary>
    private static void InferenceStrategyConfig(YamlMappingNode root, string role, NodeSources sources, List<ConfigError> errors)
    {
        if (YamlTree.Find(root, role).Value is not YamlMappingNode r) return;
        if (YamlTree.Find(r, "strategy_args").Value is not YamlMappingNode sa) return;
        if (YamlTree.Find(sa, "strategy_name").Value is not YamlScalarNode { Value: "vllm" or "sglang" }) return;
        var (configKey, config) = YamlTree.Find(sa, "strategy_config");
        if (configKey is null) return;
        sa.Children.Remove(configKey);
        if (config is null || SettingsBinding.IsNull(config)) return;
        var at = sources.Locate(config);
        if (config is not YamlMappingNode cm)
        {
            errors.Add(new ConfigError(at.File, at.Line, at.Column, $"{role}.strategy_args.strategy_config", $"expected vLLM's engine keys (a mapping), got {SettingsBinding.Describe(config)}"));
            return;
        }
        var (argsKey, args) = YamlTree.Find(r, "generating_args");
        if (args is not YamlMappingNode gm)
        {
            if (args is not null && !SettingsBinding.IsNull(args)) return; // binding reports generating_args' wrong type
            gm = new YamlMappingNode();
            sources.Set(gm, at);
            if (argsKey is not null) r.Children[argsKey] = gm;
            else
            {
                var k = new YamlScalarNode("generating_args");
                sources.Set(k, sources.Locate(configKey));
                r.Children.Add(k, gm);
            }
        }
        foreach (var kv in cm.Children)
        {
            if (kv.Key is not YamlScalarNode { Value: { } key } keyNode) continue;
            var name = key == "mem_fraction_static" ? "gpu_memory_utilization" : key;
            var (existing, _) = YamlTree.Find(gm, name);
            if (existing is not null)
            {
                var pos = sources.Locate(keyNode);
                errors.Add(new ConfigError(pos.File, pos.Line, pos.Column, $"{role}.strategy_args.strategy_config.{key}",
                    $"{role}.strategy_args.strategy_config.{key} and {role}.generating_args.{name} set the same generator setting; keep one"));
                continue;
            }
            var newKey = new YamlScalarNode(name);
            sources.Set(newKey, sources.Locate(keyNode));
            gm.Children.Add(newKey, kv.Value);
        }
    }

    /// <summary>
    /// ROLL's <c>rewards: {domain: {worker_cls, tag_included, …}}</c> routes each sample to a reward worker by its data
    /// tag. Here one reward scores every sample: one domain, whose name names the registered reward function
    /// (<c>reward.function</c>); its worker keys are ignored. Several domains, or <c>rewards</c> beside <c>reward</c>, are errors.
    /// </summary>
    private static void Rewards(YamlMappingNode root, NodeSources sources, List<ConfigError> errors)
    {
        var (key, node) = YamlTree.Find(root, "rewards");
        if (key is null) return;
        root.Children.Remove(key);
        if (node is null || SettingsBinding.IsNull(node)) return;
        var at = sources.Locate(key);
        ConfigError Error(string message) => new(at.File, at.Line, at.Column, "rewards", message);
        if (node is not YamlMappingNode m)
        {
            errors.Add(Error($"expected reward domains (a mapping such as {{math_rule: {{worker_cls: …}}}}), got {SettingsBinding.Describe(node)}"));
            return;
        }
        var domains = YamlTree.Keys(m).ToList();
        if (domains.Count != 1)
        {
            errors.Add(Error($"ROLL routes samples to {domains.Count} reward workers by data tag ({string.Join(", ", domains)}); here one reward scores every sample: keep one domain, or list weighted functions under reward.functions"));
            return;
        }
        if (YamlTree.Find(root, "reward").Key is not null)
        {
            errors.Add(Error("set either ROLL's rewards or reward, not both"));
            return;
        }
        var function = new YamlScalarNode(domains[0]);
        sources.Set(function, sources.Locate(m.Children.Keys.First()));
        var functionKey = new YamlScalarNode("function");
        sources.Set(functionKey, at);
        var reward = new YamlMappingNode { { functionKey, function } };
        sources.Set(reward, at);
        var rewardKey = new YamlScalarNode("reward");
        sources.Set(rewardKey, at);
        root.Children.Add(rewardKey, reward);
    }

    /// <summary>The one warning that lists the ignored keys, grouped, each with its line; empty when there are none.</summary>
    public static string Describe(IReadOnlyList<IgnoredKey> keys)
    {
        if (keys.Count == 0) return "";
        var file = keys[0].File;
        var sb = new System.Text.StringBuilder();
        sb.Append($"{file}: warning: {keys.Count} ROLL key{(keys.Count == 1 ? "" : "s")} mean{(keys.Count == 1 ? "s" : "")} nothing here and {(keys.Count == 1 ? "is" : "are")} ignored (--strict makes {(keys.Count == 1 ? "it an error" : "them errors")}):\n");
        foreach (var group in keys.GroupBy(k => k.Group))
        {
            var items = group.Select(k => $"{k.KeyPath} ({(k.File == file ? "" : k.File + ":")}{k.Line})");
            sb.Append($"  {group.Key}: {string.Join(", ", items)}\n");
        }
        return sb.ToString();
    }

    /// <summary>An ignored key as the error <c>--strict</c> makes of it.</summary>
    public static ConfigError AsError(IgnoredKey k) =>
        new(k.File, k.Line, k.Column, k.KeyPath, $"ROLL key that means nothing here ({k.Group}); remove it, or load without --strict to ignore it");
}
