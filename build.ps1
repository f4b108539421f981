#Requires -Version 7.4
<#
.SYNOPSIS
    Builds the MacVm module into out/MacVm, builds the test guest, runs the tests, the benchmarks or the demo.
.DESCRIPTION
    ./build.sh runs this after installing what a fresh machine lacks; call it directly once set up.
    Tasks:
      Build  (default) the module in out/MacVm (manifest, cmdlets, host in lib/, formats, MAML help)
      Guest  the test guest in out/guest (cached by package versions)
      Test   Build + Guest, then the xUnit and Pester suites; prints 'N passed, N failed'
      Bench  Build + Guest, then the benchmarks: foundation, snapshots, screenshots, Apple binding, network (figures on standard output, JSON in out/bench)
      Demo   Build + Guest, then a demo VM on the built-in default: create, show, ping, stop, remove
.EXAMPLE
    ./build.ps1 -Task Test
#>
[CmdletBinding()]
param(
    [ValidateSet('Build', 'Guest', 'Test', 'Bench', 'Demo')]
    [string] $Task = 'Build',
    [ValidateSet('Debug', 'Release')]
    [string] $Configuration = 'Release',
    # Run only the Pester tests whose file names match (for development).
    [string] $PesterFilter = '*',
    # Where the module, the guest and the test results go.
    [string] $OutputDirectory = (Join-Path $PSScriptRoot 'out')
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
$Root = $PSScriptRoot
$Out = [IO.Path]::GetFullPath($OutputDirectory)
$ModuleDir = Join-Path $Out 'MacVm'
$GuestDir = Join-Path $Out 'guest'

function Get-ModuleVersion {
    $props = [xml](Get-Content -Raw (Join-Path $Root 'Directory.Build.props'))
    $node = $props.Project.PropertyGroup | Where-Object { $_['VersionPrefix'] } | Select-Object -First 1
    $node.VersionPrefix
}

function Invoke-Native {
    param([string] $Command, [string[]] $Arguments)
    & $Command @Arguments
    if ($LASTEXITCODE -ne 0) { throw "'$Command $($Arguments -join ' ')' failed with exit code $LASTEXITCODE." }
}

function Invoke-Build {
    Write-Host "== Building the module ($Configuration)"
    Invoke-Native dotnet @('build', (Join-Path $Root 'src/MacVm.Cmdlets'), '-c', $Configuration, '--nologo', '-v', 'quiet')
    if (Test-Path $ModuleDir) { Remove-Item -Recurse -Force $ModuleDir }
    $null = New-Item -ItemType Directory -Force $ModuleDir, (Join-Path $ModuleDir 'en-US')
    $rid = [System.Runtime.InteropServices.RuntimeInformation]::RuntimeIdentifier
    $lib = Join-Path $ModuleDir 'lib'
    # The engine with its dependencies, which pwsh loads in their own load context: ReadyToRun for the
    # runtime this pwsh runs on (a runtime of another major version ignores ReadyToRun code).
    $engineFramework = if ([Environment]::Version.Major -ge 10) { 'net10.0' } else { 'net8.0' }
    Invoke-Native dotnet @('publish', (Join-Path $Root 'src/MacVm.Engine'), '-c', $Configuration, '--nologo', '-v', 'quiet',
        '-f', $engineFramework, '-r', $rid, '--no-self-contained', '-p:PublishReadyToRun=true', '-o', $lib)
    # The host: native, compiled ahead of time for this machine. Its own artifacts folder keeps its build out
    # of the other builds' obj/; only the executable and its native libraries go to lib/. For this machine's
    # CPU (IlcInstructionSet=native): the module is built where it runs, and without AVX2 and PCLMUL a save
    # hashes the guest's memory several times slower (a host built here refuses to start on an older CPU).
    $hostOut = Join-Path $Out 'aot/publish'
    Invoke-Native dotnet @('publish', (Join-Path $Root 'src/MacVm.Host'), '-c', $Configuration, '--nologo', '-v', 'quiet',
        '-r', $rid, '--artifacts-path', (Join-Path $Out 'aot'), '-p:CopyOutputSymbolsToPublishDirectory=false', '-p:IlcInstructionSet=native', '-o', $hostOut)
    Get-ChildItem $hostOut -File | Where-Object { $_.Name -eq 'MacVm.Host' -or $_.Extension -in '.so', '.dylib' } | Copy-Item -Destination $lib
    if ($IsMacOS) {
        # Virtualization.framework makes VMs only in a process with this entitlement: sign the host ad hoc.
        Invoke-Native codesign @('--sign', '-', '--force', '--entitlements', (Join-Path $Root 'src/MacVm.Host/MacVm.Host.entitlements'),
            (Join-Path $ModuleDir 'lib/MacVm.Host'))
    }
    $cmdletsOut = Join-Path $Root "src/MacVm.Cmdlets/bin/$Configuration/net8.0"
    $loaderOut = Join-Path $Root "src/MacVm.Cmdlets/Loader/bin/$Configuration/net8.0"
    Copy-Item (Join-Path $cmdletsOut 'MacVm.Cmdlets.dll'), (Join-Path $cmdletsOut 'MacVm.Cmdlets.pdb'), (Join-Path $loaderOut 'MacVm.Loader.dll') $ModuleDir
    Copy-Item (Join-Path $Root 'src/MacVm.Cmdlets/Formats/*.ps1xml') $ModuleDir
    $version = Get-ModuleVersion
    (Get-Content -Raw (Join-Path $Root 'MacVm.psd1')) -replace "ModuleVersion\s*=\s*'[^']*'", "ModuleVersion        = '$version'" |
        Set-Content -NoNewline (Join-Path $ModuleDir 'MacVm.psd1')
    $helpScript = Join-Path $Root 'tools/New-MamlHelp.ps1'
    if (Test-Path $helpScript) {
        Invoke-Native (Get-PwshPath) @('-NoProfile', '-NonInteractive', '-File', $helpScript, '-ModulePath', (Join-Path $ModuleDir 'MacVm.psd1'),
            '-XmlDocPath', (Join-Path $cmdletsOut 'MacVm.Cmdlets.xml'), '-OutputPath', (Join-Path $ModuleDir 'en-US/MacVm.Cmdlets.dll-Help.xml'))
    }
    Write-Host "   module $version in $ModuleDir"
}

# The test network server (tests/NetworkServer): a datagram switch + gateway the network tests and benchmarks use.
function Invoke-NetworkServerBuild {
    Invoke-Native dotnet @('build', (Join-Path $Root 'tests/NetworkServer'), '-c', $Configuration, '--nologo', '-v', 'quiet',
        '-o', (Join-Path $Out 'NetworkServer'))
    $env:MACVM_NETWORK_SERVER = Join-Path $Out 'NetworkServer/MacVm.NetworkServer.dll'
}

# The pwsh that runs this script (as a local dotnet tool, the process itself is 'dotnet').
function Get-PwshPath { Join-Path $PSHOME 'pwsh' }

function Invoke-GuestBuild {
    Write-Host '== Building the test guest'
    Invoke-Native bash @((Join-Path $Root 'tests/guest/build.sh'), $GuestDir)
}

function Get-PesterModulePath {
    $cache = (& dotnet nuget locals global-packages --list) -replace '^global-packages:\s*', ''
    $path = Join-Path $cache.Trim() 'pester/5.7.1/tools/Pester.psd1'
    if (-not (Test-Path $path)) {
        Invoke-Native dotnet @('restore', (Join-Path $Root 'tools/PesterDownload.csproj'), '--nologo', '-v', 'quiet')
    }
    $path
}

# The fake Virtualization framework (Linux): the Apple driver's xUnit tests and its benchmark run against it.
function Invoke-FakeFrameworkBuild {
    Write-Host '== Building the fake Virtualization framework'
    $dir = Join-Path $Out 'fake-vz'
    Invoke-Native bash @((Join-Path $Root 'tests/fakes/Virtualization/build.sh'), $dir) | Out-Host
    Join-Path $dir 'libVirtualization.so'
}

function Invoke-UnitTests {
    Write-Host '== xUnit'
    $results = Join-Path $Out 'test-results'
    $null = New-Item -ItemType Directory -Force $results
    $trx = Join-Path $results 'unit.trx'
    Remove-Item $trx -ErrorAction Ignore
    # Only the xUnit process sees the fake (the Pester suite must see the machine as it is).
    # The fake is built on GCC's Objective-C runtime: on macOS those tests do not apply (the real framework is there).
    $filter = @()
    if ($IsLinux) { $env:MACVM_VZ_FRAMEWORK = Invoke-FakeFrameworkBuild } else { $filter = @('--filter', 'Category!=FakeVirtualization') }
    try {
        & dotnet test (Join-Path $Root 'tests/Unit') -c $Configuration --nologo -v minimal --logger "trx;LogFileName=$trx" --logger 'console;verbosity=normal' @filter | Out-Host
    }
    finally {
        Remove-Item Env:MACVM_VZ_FRAMEWORK -ErrorAction Ignore
    }
    if (-not (Test-Path $trx)) { return [pscustomobject]@{ Passed = 0; Failed = 1 } }
    $counters = ([xml](Get-Content -Raw $trx)).TestRun.ResultSummary.Counters
    [pscustomobject]@{ Passed = [int]$counters.passed; Failed = [int]$counters.failed + [int]$counters.error + [int]$counters.timeout }
}

function Invoke-PesterTests {
    Write-Host '== Pester'
    $pester = Get-PesterModulePath
    $resultFile = Join-Path $Out 'test-results/pester.json'
    Remove-Item $resultFile -ErrorAction Ignore
    # A clean child pwsh, as a user would have: no profile, the module imported by manifest path.
    $script = @"
`$ErrorActionPreference = 'Stop'
Import-Module '$pester'
`$config = New-PesterConfiguration
`$config.Run.Path = (Get-ChildItem '$Root/tests/Pester' -Filter '$PesterFilter.Tests.ps1').FullName
`$config.Run.PassThru = `$true
`$config.Output.Verbosity = 'Detailed'
`$config.TestResult.Enabled = `$true
`$config.TestResult.OutputPath = '$Out/test-results/pester.xml'
`$r = Invoke-Pester -Configuration `$config
@{ Passed = `$r.PassedCount; Failed = `$r.FailedCount + `$r.FailedBlocksCount + `$r.FailedContainersCount } | ConvertTo-Json | Set-Content '$resultFile'
"@
    $env:MACVM_MODULE = Join-Path $ModuleDir 'MacVm.psd1'
    $env:MACVM_GUEST_DIR = $GuestDir
    $env:MACVM_TEST_RUN = $TestRun
    # The screenshot tests decode pictures with this test tool (SkiaSharp), never inside the module's pwsh.
    $probeDir = Join-Path $Out 'tools/ImageProbe'
    Invoke-Native dotnet @('build', (Join-Path $Root 'tests/ImageProbe'), '-c', $Configuration, '--nologo', '-v', 'quiet', '-o', $probeDir) | Out-Host
    $env:MACVM_IMAGE_PROBE = Join-Path $probeDir 'ImageProbe.dll'
    & (Get-PwshPath) -NoProfile -NonInteractive -Command $script | Out-Host
    if (-not (Test-Path $resultFile)) { return [pscustomobject]@{ Passed = 0; Failed = 1 } }
    Get-Content -Raw $resultFile | ConvertFrom-Json
}

function Get-LeftoverProcesses {
    # Every test store of this run lives in a folder named macvm-test-<run>-*: processes that mention one
    # are this run's (another run on the same machine has its own name).
    Get-Process | Where-Object {
        $_.ProcessName -in @('qemu-system-x86_64', 'qemu-system-aarch64', 'MacVm.Host', 'MacVm.NetworkServer', 'dotnet') -and
        ((Get-Content -Raw "/proc/$($_.Id)/cmdline" -ErrorAction Ignore) -match "macvm-test-$TestRun-")
    }
}

# Names this run's test stores; a short random word keeps socket paths short.
$TestRun = [IO.Path]::GetRandomFileName().Substring(0, 5)

switch ($Task) {
    'Build' { Invoke-Build }
    'Guest' { Invoke-GuestBuild }
    'Test' {
        Invoke-Build
        Invoke-NetworkServerBuild
        Invoke-GuestBuild
        $unit = Invoke-UnitTests
        $pester = Invoke-PesterTests
        $passed = $unit.Passed + $pester.Passed
        $failed = $unit.Failed + $pester.Failed
        $left = @(Get-LeftoverProcesses)
        if ($left.Count -gt 0) {
            Write-Host "Leftover VM processes after the tests (killed now): $($left.Id -join ', ')"
            $left | Stop-Process -Force
            $failed++
        }
        Write-Host "xUnit: $($unit.Passed) passed, $($unit.Failed) failed; Pester: $($pester.Passed) passed, $($pester.Failed) failed"
        Write-Host "$passed passed, $failed failed"
        if ($failed -gt 0) { exit 1 }
    }
    'Bench' {
        Invoke-Build
        Invoke-NetworkServerBuild
        Invoke-GuestBuild
        # Each benchmark runs even when the one before failed; the first failure's exit code is the task's.
        $benchExit = 0
        foreach ($bench in 'Invoke-Benchmarks.ps1', 'Invoke-SnapshotBenchmarks.ps1', 'Invoke-ScreenshotBenchmarks.ps1', 'Invoke-NetworkBenchmarks.ps1') {
            & (Get-PwshPath) -NoProfile -NonInteractive -File (Join-Path $Root "tests/Benchmarks/$bench") -ModulePath (Join-Path $ModuleDir 'MacVm.psd1') -GuestDir $GuestDir
            if ($LASTEXITCODE -ne 0 -and $benchExit -eq 0) { $benchExit = $LASTEXITCODE }
        }
        if ($IsLinux) {
            # One message send through the Apple driver's binding layer (against the fake) beside a direct C call.
            $fake = Invoke-FakeFrameworkBuild
            & dotnet run -c Release --project (Join-Path $Root 'tests/Benchmarks/AppleBinding') -- $fake (Join-Path $Out 'bench/apple-binding.json')
            if ($LASTEXITCODE -ne 0 -and $benchExit -eq 0) { $benchExit = $LASTEXITCODE }
        }
        if ($benchExit -ne 0) { exit $benchExit }
    }
    'Demo' {
        Invoke-Build
        Invoke-GuestBuild
        & (Get-PwshPath) -NoProfile -NonInteractive -File (Join-Path $Root 'tools/Start-Demo.ps1') -ModulePath (Join-Path $ModuleDir 'MacVm.psd1') -GuestDir $GuestDir
        if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
    }
}
