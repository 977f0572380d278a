namespace Rlhf.Cli;

/// <summary>What the user is told when a command throws: the problem in the user's words, without a stack trace.</summary>
public static class CliErrors
{
    /// <summary>
    /// The message of <paramref name="e"/> as the error line shows it. Errors of input (arguments, files, formats,
    /// libtorch's own messages) are shown as they are; the exceptions that only a bug throws are shown with their type.
    /// </summary>
    public static string Describe(Exception e)
    {
        if (e is AggregateException { InnerExceptions.Count: 1 } agg) return Describe(agg.InnerExceptions[0]);
        if (e is System.Reflection.TargetInvocationException { InnerException: { } inner }) return Describe(inner);
        return e is NullReferenceException or IndexOutOfRangeException or KeyNotFoundException or InvalidCastException
            or NotImplementedException or ArithmeticException and not OverflowException
            ? $"{e.GetType().Name}: {e.Message} (a bug in rlhf; RLHF_DEBUG=1 prints its stack trace)"
            : e.Message;
    }
}
