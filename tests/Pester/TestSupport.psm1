# Shared set-up for the Pester suites: a scratch store per file, the test guest imported as an
# image, and a clean-up that leaves no VM process behind even when a test failed.

function New-TestStore {
    <# Makes a scratch store under /tmp (short: unix socket paths are limited) and points $env:MACVM_HOME at it. #>
    # build.ps1 names its run (MACVM_TEST_RUN) so that its leftover-process check sees only its own VMs.
    $run = if ($env:MACVM_TEST_RUN) { "$($env:MACVM_TEST_RUN)-" } else { '' }
    $path = Join-Path '/tmp' ("macvm-test-$run" + [IO.Path]::GetRandomFileName().Replace('.', ''))
    $null = New-Item -ItemType Directory -Path $path
    $env:MACVM_HOME = $path
    $path
}

function Get-TestGuest {
    <# The test guest's files and kernel command line (built by tests/guest/build.sh). #>
    $dir = $env:MACVM_GUEST_DIR
    if (-not $dir -or -not (Test-Path "$dir/guest.json")) { throw "The test guest is not built: set `$env:MACVM_GUEST_DIR to the output of tests/guest/build.sh." }
    $meta = Get-Content -Raw "$dir/guest.json" | ConvertFrom-Json
    [pscustomobject]@{
        Kernel      = Join-Path $dir $meta.kernel
        Initrd      = Join-Path $dir $meta.initrd
        Disk        = Join-Path $dir $meta.disk
        CommandLine = $meta.cmdline
    }
}

function Import-TestGuest {
    <# Imports the test guest as an image (with its agent unless -NoAgent). #>
    param([string] $Name = 'tiny', [switch] $NoAgent, [string] $CommandLine)
    $g = Get-TestGuest
    $cmdline = if ($CommandLine) { $CommandLine } else { $g.CommandLine }
    Import-MacVmImage -Name $Name -Kernel $g.Kernel -Initrd $g.Initrd -Disk $g.Disk -KernelCommandLine $cmdline `
        -GuestAgent:(-not $NoAgent) -ReadyMarker 'MACVM-GUEST-READY'
}

function Get-StoreProcess {
    <# qemu-system and MacVm.Host processes that belong to a store (their command line names it). #>
    param([Parameter(Mandatory)] [string] $Store)
    Get-Process | Where-Object {
        $_.ProcessName -in @('qemu-system-x86_64', 'qemu-system-aarch64', 'MacVm.Host', 'setpriv') -and
        ((Get-Content -Raw "/proc/$($_.Id)/cmdline" -ErrorAction Ignore) -replace "`0", ' ') -like "*$Store*"
    }
}

function Remove-TestStore {
    <# Removes every VM of the store, kills whatever is left of them, and deletes the store. #>
    param([Parameter(Mandatory)] [string] $Store)
    $env:MACVM_HOME = $Store
    Get-MacVm -ErrorAction Ignore | Remove-MacVm -Force -Confirm:$false -ErrorAction Continue
    Get-StoreProcess -Store $Store | Stop-Process -Force -ErrorAction Ignore
    Remove-Item -Recurse -Force $Store -ErrorAction Ignore
}

function Wait-Until {
    <# Polls a condition (a script block) until it is true or the timeout passes; returns whether it became true. #>
    param([Parameter(Mandatory)] [scriptblock] $Condition, [int] $TimeoutSec = 10)
    $deadline = [DateTime]::UtcNow.AddSeconds($TimeoutSec)
    while ([DateTime]::UtcNow -lt $deadline) {
        if (& $Condition) { return $true }
        Start-Sleep -Milliseconds 50
    }
    [bool](& $Condition)
}

function Test-ProcessAlive {
    <# True while the process runs; a zombie (exited, not yet reaped by its parent) counts as gone. #>
    param([int] $Id)
    $stat = Get-Content -Raw "/proc/$Id/stat" -ErrorAction Ignore
    if (-not $stat) { return $false }
    # Field 3 (after the parenthesised command name) is the state.
    $stat.Substring($stat.LastIndexOf(')') + 2, 1) -ne 'Z'
}

function Start-TestNetwork {
    <#
    Starts the test network server (tests/NetworkServer, built by build.ps1 into $env:MACVM_NETWORK_SERVER):
    a datagram switch that answers ARP and ping for -Gateway. Returns its socket path, log and process;
    stop it with Stop-TestNetwork (in AfterAll). Read what it saw with Get-TestNetworkFrame.
    #>
    param([Parameter(Mandatory)] [string] $Path, [string] $Gateway = '10.0.2.1')
    $server = $env:MACVM_NETWORK_SERVER
    if (-not $server -or -not (Test-Path $server)) { throw 'Set $env:MACVM_NETWORK_SERVER to the built MacVm.NetworkServer.dll (build.ps1 builds it).' }
    $log = "$Path.log"
    $process = Start-Process -FilePath dotnet -ArgumentList @($server, '--socket', $Path, '--gateway', $Gateway, '--log', $log) -PassThru `
        -RedirectStandardOutput "$Path.out" -RedirectStandardError "$Path.err"
    if (-not (Wait-Until { Test-Path $Path } -TimeoutSec 30)) {
        Stop-Process -Id $process.Id -Force -ErrorAction Ignore
        throw "The test network server did not create '$Path': $(Get-Content -Raw "$Path.err" -ErrorAction Ignore)"
    }
    [pscustomobject]@{ SocketPath = $Path; Log = $log; Gateway = $Gateway; Process = $process }
}

function Stop-TestNetwork {
    <# Stops a server Start-TestNetwork started (and removes its socket). #>
    param($Network)
    if (-not $Network) { return }
    Stop-Process -Id $Network.Process.Id -Force -ErrorAction Ignore
    $null = $Network.Process.WaitForExit(5000)
    Remove-Item -LiteralPath $Network.SocketPath -Force -ErrorAction Ignore
}

function Get-TestNetworkFrame {
    <# The frames the server received, one object each: Ms, Client (the sender's socket path), Src, Dst (MACs), Kind, From, To, Length. #>
    param([Parameter(Mandatory)] $Network)
    if (-not (Test-Path $Network.Log)) { return }
    Get-Content -LiteralPath $Network.Log | Where-Object { $_ } | ConvertFrom-Json
}

function New-TestTartVm {
    <#
    A synthetic Tart VM folder, as Tart lays one out (~/.tart/vms/<name>, or an OCI cache entry): config.json
    with base64 hardwareModel and ecid, a sparse raw disk.img of -DiskMB MiB and nvram.bin. Returns the path.
    #>
    param([Parameter(Mandatory)] [string] $Path, [string] $Os = 'darwin', [int] $DiskMB = 64, [switch] $NoEcid)
    $null = New-Item -ItemType Directory -Force $Path
    $config = [ordered]@{
        version = 1; os = $Os; arch = 'arm64'; cpuCount = 4; cpuCountMin = 4
        memorySize = 8GB; memorySizeMin = 8GB; macAddress = '7e:31:a2:00:00:01'
        display = @{ width = 1024; height = 768 }
    }
    if ($Os -eq 'darwin') {
        $config.hardwareModel = [Convert]::ToBase64String([Text.Encoding]::UTF8.GetBytes('synthetic hardware model'))
        if (-not $NoEcid) { $config.ecid = [Convert]::ToBase64String([byte[]](1..16)) }
    }
    $config | ConvertTo-Json | Set-Content (Join-Path $Path 'config.json')
    $disk = [IO.File]::Create((Join-Path $Path 'disk.img'))
    try {
        # Mostly a hole, like a real macOS disk: a few bytes of data at the start and in the middle.
        foreach ($at in 0, ($DiskMB * 1MB / 2)) {
            $bytes = [Text.Encoding]::UTF8.GetBytes("synthetic data at $at")
            $disk.Position = $at
            $disk.Write($bytes, 0, $bytes.Length)
        }
        $disk.SetLength($DiskMB * 1MB)
    }
    finally { $disk.Dispose() }
    [IO.File]::WriteAllText((Join-Path $Path 'nvram.bin'), 'synthetic nvram')
    $Path
}

function Get-SnapshotFileChecksum {
    # A snapshot file's checksum as the manifest writes it (CRC-64/ECMA-182), computed here in one piece
    # with System.IO.Hashing from the module's lib folder: not through the module's own chunked copy.
    param([Parameter(Mandatory)] [string] $Path)
    if (-not ('System.IO.Hashing.Crc64' -as [type])) {
        Add-Type -Path (Join-Path (Split-Path -Parent $env:MACVM_MODULE) 'lib/System.IO.Hashing.dll')
    }
    $crc = [System.IO.Hashing.Crc64]::new()
    $stream = [IO.File]::OpenRead($Path)
    try { $crc.Append([IO.Stream] $stream) } finally { $stream.Dispose() }
    'crc64:' + $crc.GetCurrentHashAsUInt64().ToString('x16')
}

Export-ModuleMember -Function Get-SnapshotFileChecksum, New-TestStore, Get-TestGuest, Import-TestGuest, Get-StoreProcess, Remove-TestStore, Wait-Until, Test-ProcessAlive, Start-TestNetwork, Stop-TestNetwork, Get-TestNetworkFrame, New-TestTartVm
