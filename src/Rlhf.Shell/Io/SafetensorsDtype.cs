using Rlhf.Torch;

namespace Rlhf.Shell.Io;

/// <summary>The element types of the safetensors format, spelled as in its header.</summary>
public enum SafetensorsDtype
{
    /// <summary>bool, 1 byte.</summary>
    BOOL,
    /// <summary>uint8.</summary>
    U8,
    /// <summary>int8.</summary>
    I8,
    /// <summary>int16.</summary>
    I16,
    /// <summary>uint16 (raw bytes only: libtorch 1.13 has no uint16).</summary>
    U16,
    /// <summary>IEEE half.</summary>
    F16,
    /// <summary>bfloat16.</summary>
    BF16,
    /// <summary>int32.</summary>
    I32,
    /// <summary>uint32 (raw bytes only).</summary>
    U32,
    /// <summary>float32.</summary>
    F32,
    /// <summary>float64.</summary>
    F64,
    /// <summary>int64.</summary>
    I64,
    /// <summary>uint64 (raw bytes only).</summary>
    U64,
    /// <summary>float8 e4m3fn (raw bytes only).</summary>
    F8_E4M3,
    /// <summary>float8 e5m2 (raw bytes only).</summary>
    F8_E5M2,
}

/// <summary>Sizes and tensor-dtype mapping of <see cref="SafetensorsDtype"/>.</summary>
public static class SafetensorsDtypes
{
    /// <summary>Bytes per element.</summary>
    public static int ElementSize(this SafetensorsDtype d) => d switch
    {
        SafetensorsDtype.BOOL or SafetensorsDtype.U8 or SafetensorsDtype.I8 or SafetensorsDtype.F8_E4M3 or SafetensorsDtype.F8_E5M2 => 1,
        SafetensorsDtype.I16 or SafetensorsDtype.U16 or SafetensorsDtype.F16 or SafetensorsDtype.BF16 => 2,
        SafetensorsDtype.I32 or SafetensorsDtype.U32 or SafetensorsDtype.F32 => 4,
        _ => 8,
    };

    /// <summary>The tensor dtype holding this element type, or null when it can only be read as raw bytes.</summary>
    public static ScalarType? ToScalarType(this SafetensorsDtype d) => d switch
    {
        SafetensorsDtype.BOOL => ScalarType.Bool,
        SafetensorsDtype.U8 => ScalarType.UInt8,
        SafetensorsDtype.I8 => ScalarType.Int8,
        SafetensorsDtype.I16 => ScalarType.Int16,
        SafetensorsDtype.F16 => ScalarType.Float16,
        SafetensorsDtype.BF16 => ScalarType.BFloat16,
        SafetensorsDtype.I32 => ScalarType.Int32,
        SafetensorsDtype.F32 => ScalarType.Float32,
        SafetensorsDtype.F64 => ScalarType.Float64,
        SafetensorsDtype.I64 => ScalarType.Int64,
        _ => null,
    };

    /// <summary>The safetensors spelling of a tensor dtype.</summary>
    public static SafetensorsDtype FromScalarType(ScalarType t) => t switch
    {
        ScalarType.Bool => SafetensorsDtype.BOOL,
        ScalarType.UInt8 => SafetensorsDtype.U8,
        ScalarType.Int8 => SafetensorsDtype.I8,
        ScalarType.Int16 => SafetensorsDtype.I16,
        ScalarType.Float16 => SafetensorsDtype.F16,
        ScalarType.BFloat16 => SafetensorsDtype.BF16,
        ScalarType.Int32 => SafetensorsDtype.I32,
        ScalarType.Float32 => SafetensorsDtype.F32,
        ScalarType.Float64 => SafetensorsDtype.F64,
        ScalarType.Int64 => SafetensorsDtype.I64,
        _ => throw new ArgumentOutOfRangeException(nameof(t), t, "no safetensors dtype for this tensor dtype"),
    };

    /// <summary>Parses a header dtype string (exact, case-sensitive as the format requires); false when unknown.</summary>
    public static bool TryParse(string s, out SafetensorsDtype d) =>
        Enum.TryParse(s, ignoreCase: false, out d) && Enum.IsDefined(d) && !int.TryParse(s, out _);
}
