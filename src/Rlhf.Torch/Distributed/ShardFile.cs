using System.Runtime.InteropServices;
using N = Rlhf.Torch.Native.Native;

namespace Rlhf.Torch.Distributed;

/// <summary>
/// A file of named tensors in libtorch's pickle format (<c>torch::pickle_save</c>; Python's
/// <c>torch.load</c> reads it): what checkpoint shards (optimizer states, model states) are written as.
/// </summary>
public static class ShardFile
{
    /// <summary>Writes <paramref name="tensors"/> to <paramref name="path"/> (not atomically: write to a temporary name, then rename).</summary>
    public static unsafe void Save(string path, IReadOnlyList<KeyValuePair<string, Tensor>> tensors)
    {
        var n = tensors.Count;
        var names = new nint[n];
        var hs = new nint[n];
        try
        {
            for (var i = 0; i < n; i++)
            {
                names[i] = Marshal.StringToCoTaskMemUTF8(tensors[i].Key);
                hs[i] = tensors[i].Value.H.DangerousGetHandle();
            }
            fixed (nint* pn = names)
            fixed (nint* ph = hs)
                Dist.Check(N.rt_tensors_save(path, pn, ph, n));
            GC.KeepAlive(tensors);
        }
        finally
        {
            foreach (var p in names) if (p != 0) Marshal.FreeCoTaskMem(p);
        }
    }

    /// <summary>Reads every named tensor of a file written by <see cref="Save"/>, in file order (the file is read once); the tensors join the current scope.</summary>
    public static unsafe List<KeyValuePair<string, Tensor>> Load(string path)
    {
        nint names, hs;
        var n = N.rt_tensors_load(path, &names, &hs);
        if (n < 0) Dist.Throw();
        try
        {
            var r = new List<KeyValuePair<string, Tensor>>(n);
            for (var i = 0; i < n; i++)
            {
                var name = ((nint*)names)[i];
                r.Add(new(Marshal.PtrToStringUTF8(name) ?? "", Tensor.Wrap(((nint*)hs)[i])));
                N.rt_free_string(name);
            }
            return r;
        }
        finally
        {
            N.rt_free_buffer(names);
            N.rt_free_buffer(hs);
        }
    }
}
