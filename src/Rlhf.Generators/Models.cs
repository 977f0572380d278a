namespace Rlhf.Generators
{
    /// <summary>The shapes a settings value can take.</summary>
    public enum ValueKind { String, Integer, Number, Boolean, List, Ref }

    /// <summary>
    /// The type of one property. <see cref="RefKey"/> names a record or enum declared somewhere
    /// (<c>file.schema.json#/pointer</c>); lists carry their item type.
    /// </summary>
    public sealed record ValueType(
        ValueKind Kind,
        string? RefKey,
        ValueType? Item,
        double? Minimum,
        double? Maximum,
        double? ExclusiveMinimum,
        double? ExclusiveMaximum,
        EquatableArray<long> IntegerEnum,
        bool AllowAuto,
        bool AllowRange);

    /// <summary>
    /// One property of a record: YAML key, C# name, type, required/default, doc. <see cref="Resolved"/> (from
    /// <c>x-resolved</c>) marks a key the binder does not require but a later resolution step always fills: its C# property
    /// is not nullable, and the text says what fills it.
    /// </summary>
    public sealed record PropertyModel(
        string YamlName,
        string CsName,
        ValueType Type,
        bool Required,
        JsonValue? Default,
        string? Description,
        TextPos Pos,
        string? Resolved = null);

    /// <summary>A record to generate, keyed by where it is declared.</summary>
    public sealed record RecordModel(string Key, string Name, string? Description, EquatableArray<PropertyModel> Properties, TextPos Pos);

    /// <summary>
    /// A string enum to generate. <see cref="ExternalType"/> (from <c>x-csharp-type</c>) names an existing C# enum to bind to
    /// instead of declaring one; then only the YAML helper is generated.
    /// </summary>
    public sealed record EnumModel(string Key, string Name, string? Description, EquatableArray<string> Values, EquatableArray<string> Members, TextPos Pos, string? ExternalType = null);

    /// <summary>A diagnostic as plain data (no Location), reported by the output step.</summary>
    public sealed record DiagnosticInfo(string Id, string Message, string FilePath, TextPos Pos, int EndLine, int EndColumn);

    /// <summary>Everything one schema file declares, plus the diagnostics found while reading it.</summary>
    public sealed record SchemaFileModel(
        string FileName,
        string FilePath,
        EquatableArray<RecordModel> Records,
        EquatableArray<EnumModel> Enums,
        EquatableArray<DiagnosticInfo> Diagnostics);

    /// <summary>What every file needs to know about types declared elsewhere: key, name, kind.</summary>
    public sealed record TypeEntry(string Key, string Name, bool IsEnum, bool HasRequired, EquatableArray<string> EnumValues, string FileName, string? ExternalType = null)
    {
        /// <summary>How generated code spells the type: the generated name, or <c>global::</c> + the external enum's full name.</summary>
        public string CsName => ExternalType == null ? Name : "global::" + ExternalType;
    }

    /// <summary>The table of all declared types, built once from every schema file.</summary>
    public sealed record TypeTable(EquatableArray<TypeEntry> Entries, EquatableArray<DiagnosticInfo> Diagnostics);

    /// <summary>Source text for one schema file and the diagnostics of emitting it.</summary>
    public sealed record EmitResult(string HintName, string Source, EquatableArray<DiagnosticInfo> Diagnostics);
}
