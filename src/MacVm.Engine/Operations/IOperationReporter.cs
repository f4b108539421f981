namespace MacVm.Engine.Operations;

/// <summary>
/// How the engine talks back to whoever called it (a cmdlet, a test, the benchmark) without holding
/// it. Implementations must accept calls from any thread.
/// </summary>
public interface IOperationReporter
{
    /// <summary>Progress of a long operation.</summary>
    void Progress(OperationProgress progress);

    /// <summary>A detail for -Verbose.</summary>
    void Verbose(string message);

    /// <summary>Something the user should know although the operation goes on.</summary>
    void Warning(string message);
}

/// <summary>One progress update.</summary>
/// <param name="ActivityId">Distinguishes parallel activities.</param>
/// <param name="Activity">What is being done ("Starting VM web1").</param>
/// <param name="Status">The current step.</param>
/// <param name="PercentComplete">0–100, or -1 when unknown.</param>
/// <param name="Completed">True on the last update of the activity.</param>
public sealed record OperationProgress(int ActivityId, string Activity, string Status, int PercentComplete = -1, bool Completed = false);

/// <summary>A reporter that drops everything (for callers that want no output).</summary>
public sealed class NullReporter : IOperationReporter
{
    /// <summary>The shared instance.</summary>
    public static readonly NullReporter Instance = new();

    /// <inheritdoc/>
    public void Progress(OperationProgress progress) { }

    /// <inheritdoc/>
    public void Verbose(string message) { }

    /// <inheritdoc/>
    public void Warning(string message) { }
}
