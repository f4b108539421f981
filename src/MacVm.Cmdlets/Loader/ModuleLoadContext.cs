using System.Management.Automation;
using System.Reflection;
using System.Runtime.Loader;

namespace MacVm.Loader;

/// <summary>
/// Loads the engine and its dependencies (StreamJsonRpc, Newtonsoft.Json, System.IO.Pipelines, …)
/// from the module's lib/ folder into a load context of their own, so they never clash with the
/// versions pwsh or another module already loaded.
/// </summary>
public sealed class ModuleLoadContext : AssemblyLoadContext
{
    private static readonly string s_libDirectory =
        Path.Combine(Path.GetDirectoryName(typeof(ModuleLoadContext).Assembly.Location)!, "lib");
    private static readonly ModuleLoadContext s_instance = new();
    private static int s_registered;

    private ModuleLoadContext() : base("MacVm", isCollectible: false) { }

    /// <summary>Lets the default context find the engine (in this context) from now on.</summary>
    public static void Register()
    {
        if (Interlocked.Exchange(ref s_registered, 1) == 0)
            Default.Resolving += ResolveEngine;
    }

    /// <inheritdoc/>
    protected override Assembly? Load(AssemblyName assemblyName)
    {
        var path = Path.Combine(s_libDirectory, assemblyName.Name + ".dll");
        // Framework assemblies come from the default context; only our private copies load here.
        return File.Exists(path) ? LoadFromAssemblyPath(path) : null;
    }

    private static Assembly? ResolveEngine(AssemblyLoadContext context, AssemblyName name) =>
        // Only the engine is resolved for the default context; everything it needs follows it here.
        name.Name == "MacVm.Engine" ? s_instance.LoadFromAssemblyName(name) : null;
}

/// <summary>
/// Imported as the manifest's first nested module, before the cmdlets: PowerShell reflects over
/// the cmdlets' parameters (engine types) while importing them, so the engine must resolve by then.
/// </summary>
public sealed class LoaderInitializer : IModuleAssemblyInitializer
{
    /// <inheritdoc/>
    public void OnImport() => ModuleLoadContext.Register();
}
