#Requires -Version 7.4
<#
.SYNOPSIS
    The snapshot benchmarks of MacVm: restore to a guest answer (module against raw QEMU and against
    a cold boot), save (module against raw QMP), four restores in parallel, snapshot sizes.
.DESCRIPTION
    One run, on the test guest (TCG, 1 CPU, 256 MB), measures:

      1. Restore → guest answers.
         Module: Restore-MacVmSnapshot -NoFallback of the snapshot 'base', then Test-MacVmGuest retried
         until the first pong; timed from just before the cmdlet to the pong; then Remove-MacVm -Force.
         The module's snapshot keeps the memory as a flat image (memory.bin) that the restored QEMU maps
         copy-on-write; state.bin holds the devices only.
         Raw: the same instant restored the way plain QEMU does it, without the module: the snapshot is
         converted once (untimed) into a plain QEMU state with the memory inside the migration stream
         (New-RawState). qemu-img makes a qcow2 overlay on the snapshot's disk.qcow2 (used read-only),
         qemu-system-x86_64 is spawned with the arguments the module gave the QEMU of a restored VM
         (captured from /proc, '-incoming defer' included, paths moved to a scratch folder) except that
         its memory is QEMU's own (memory-backend-ram), QMP: qmp_capabilities, migrate-incoming
         "exec:cat <plain state>", query-status polled every ~2 ms until 'paused', cont; then the agent
         socket gets 'ping N' every ~50 ms until a 'pong N'. Timed from just before qemu-img to the pong.
         Figure: median module / median raw (target ≤ 1.25; the issue's stretch: ≤ 1.0).
      2. Module restore against New-MacVm's cold boot to the first pong (same ping loop): cold / restore (≥ 8).
      3. Save: Save-MacVm of a running module VM against plain QEMU's save on a raw QEMU booted by this
         script with its own memory (stop, query-block, blockdev-snapshot-sync, migrate-set-parameters
         max-bandwidth, migrate "exec:cat > <scratch file>" with the memory in the stream, query-migrate
         polled every ~2 ms, cont). Module: the cmdlet's wall time (devices streamed, memory image
         copied, every file checksummed, manifest written); raw: stop → cont returned. Ratio ≤ 1.3.
      4. Restore-MacVmSnapshot -Count 4: wall time to all four guests answering (Test-MacVmGuest on each
         in turn) against the single module restore of the same round (≤ 2.5×), and each clone's
         disk.qcow2 on disk (allocated bytes, as du counts them) right after the restore, before any
         guest command (≤ 2 MB).
      5. The snapshot's size on disk (state.bin, memory.bin, disk.qcow2: apparent and allocated), the
         plain QEMU state's size, and memory.bin compressed with 'zstd -1' (size, compression and
         decompression time), for reference; plus a raw restore that reads the plain state through
         'zstd -dc' (what loading a compressed state costs).

    Where the module's restore time goes: the host.log events of each restored VM (host started, QEMU
    started, QMP connected, state loaded, agent answered, guest clock set), in ms since the cmdlet was
    called, next to the raw restore's phases; the checksum check the engine makes before it starts a host
    (timed here by hashing the snapshot's files the way SnapshotIntegrity.VerifyAsync does, warm cache;
    restores skip it while the snapshot's stamp holds),
    the qemu-img overlay, the host executable's bare start-up ('MacVm.Host --help') and one fsync'd
    small-file write (the host writes vm.json that way before it spawns QEMU on a restore).

    Rounds interleave raw and module (raw restore, raw zstd restore, module restore, module ×4, cold
    boot; then, with a module VM and a raw VM running, raw save, module save) after one untimed warm-up
    round, so machine noise hits both alike. The number of QEMU processes not started by this script
    (other test runs: noise) is recorded for each round.

    Everything runs in a scratch store /tmp/macvm-bench-XXXX (unix socket paths are limited to 108
    bytes), removed at the end together with every VM, snapshot and QEMU this script started.
    Exit code: 0 when every figure was measured (missed targets are reported, not failures);
    1 when a measurement could not be made, or when VM processes were left over and had to be killed.
.EXAMPLE
    pwsh -NoProfile -File tests/Benchmarks/Invoke-SnapshotBenchmarks.ps1 -ModulePath out/MacVm/MacVm.psd1 -GuestDir out/guest
#>
[CmdletBinding()]
param(
    # The module manifest (out/MacVm/MacVm.psd1).
    [Parameter(Mandatory)] [string] $ModulePath,
    # The test guest's folder (output of tests/guest/build.sh, with guest.json).
    [Parameter(Mandatory)] [string] $GuestDir,
    # Timed rounds (each: one of every restore measurement and one save pair).
    [ValidateRange(1, 100)] [int] $Runs = 5,
    # Where the figures go as JSON.
    [string] $OutFile = (Join-Path (Split-Path -Parent (Split-Path -Parent $PSScriptRoot)) 'out/bench/snapshots.json')
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
$ProgressPreference = 'SilentlyContinue'

$RestoreRatioTarget = 1.25
$ColdBootSpeedupTarget = 8
$SaveRatioTarget = 1.3
$ParallelCount = 4
$ParallelRatioTarget = 2.5
$CloneDiskTargetBytes = 2MB
$BootTimeoutSec = 90
$PingIntervalMs = 50
$StatePollMs = 2
$SnapshotName = 'base'

Import-Module (Join-Path $PSScriptRoot 'BenchmarkSupport.psm1') -Force

# The events of host.log that a restore's timeline reports (Read-HostLogTimeline).
$HostLogEvents = [ordered]@{
    # The host's first line: adopting the QEMU its launcher started, or (without setsid/setpriv) its banner.
    hostStarted     = '^(Adopted QEMU \(pid|MacVm\.Host )'
    # QEMU started by the launcher runs before the host logs anything: then this is the host's first line too.
    qemuStarted     = '^(QEMU started|Adopted QEMU \(pid)'
    qmpConnected    = '^QMP connected'
    migrationSetup  = '^QMP event MIGRATION .*"setup"'
    resumed         = '^QMP event RESUME'
    stateLoaded     = '^Machine state loaded'
    agentPortOpened = '^QMP event VSERPORT_CHANGE .*"open":\s*true'
    firstConsoleOutput = '^First console output'
    agentAnswered   = '^Guest agent answered'
    clockSet        = '^Guest clock set'
    restoreFailed   = '^Restore failed'
}

# What the final clean-up looks for: the shared set, and the cat/zstd that feed a raw restore its state.
$ScratchProcessNames = @('qemu-system-x86_64', 'qemu-system-aarch64', 'MacVm.Host', 'setpriv', 'sh', 'cat', 'zstd')

#region helpers (the shared ones are in BenchmarkSupport.psm1)

function Get-Median {
    param([double[]] $Values, [int] $Digits = 1)
    (Get-Stats $Values -Digits $Digits).median
}

function Get-FileBytes {
    <# Apparent size and allocated bytes (st_blocks × 512, what du counts) of a file. #>
    param([string] $Path)
    $out = & stat -c '%s %b %B %h' -- $Path
    if ($LASTEXITCODE -ne 0) { throw "stat '$Path' failed." }
    $f = $out.Split(' ')
    [ordered]@{ apparentBytes = [long]$f[0]; allocatedBytes = [long]$f[1] * [long]$f[2]; links = [int]$f[3] }
}

function Measure-ChecksumMs {
    <#
    Checks files the way SnapshotIntegrity.VerifyAsync does when no stamp vouches for them (CRC-64 of
    every byte, through the module's own System.IO.Hashing); returns ms. Restores skip this while the
    stamp holds: it is what a first restore after a copy of the store costs.
    #>
    param([string[]] $Paths)
    $sw = [Diagnostics.Stopwatch]::StartNew()
    foreach ($p in $Paths) {
        $hash = [IO.Hashing.Crc64]::new()
        $f = [IO.FileStream]::new($p, [IO.FileMode]::Open, [IO.FileAccess]::Read, [IO.FileShare]::Read, 1MB, [IO.FileOptions]::SequentialScan)
        try { $hash.Append([IO.Stream] $f) } finally { $f.Dispose() }
    }
    $sw.Elapsed.TotalMilliseconds
}

function Measure-FsyncWriteMs {
    <# One small file written, flushed to disk and renamed into place, as AtomicFile.WriteAllText does; ms. #>
    param([string] $Dir)
    $target = Join-Path $Dir 'fsync-probe.json'
    $tmp = "$target.tmp"
    $sw = [Diagnostics.Stopwatch]::StartNew()
    $fs = [IO.FileStream]::new($tmp, [IO.FileMode]::CreateNew, [IO.FileAccess]::Write, [IO.FileShare]::None)
    try {
        $bytes = [Text.Encoding]::UTF8.GetBytes(('{"probe": "' + ('x' * 1200) + '"}'))
        $fs.Write($bytes, 0, $bytes.Length)
        $fs.Flush($true)
    }
    finally { $fs.Dispose() }
    [IO.File]::Move($tmp, $target, $true)
    $ms = $sw.Elapsed.TotalMilliseconds
    Remove-Item $target -Force
    $ms
}

#endregion

#region raw QEMU: process, unix sockets, QMP, agent

function Read-QmpMessage {
    <# The next JSON line from QMP (blocking up to $TimeoutSec). #>
    param($Qmp, [double] $TimeoutSec = 60)
    $sw = [Diagnostics.Stopwatch]::StartNew()
    while ($true) {
        $text = $Qmp.Pending.ToString()
        $nl = $text.IndexOf("`n")
        if ($nl -ge 0) {
            $null = $Qmp.Pending.Remove(0, $nl + 1)
            $line = $text.Substring(0, $nl).Trim()
            if ($line) { return ($line | ConvertFrom-Json) }
            continue
        }
        $remaining = $TimeoutSec - $sw.Elapsed.TotalSeconds
        if ($remaining -le 0) { throw "QMP sent nothing for $TimeoutSec s." }
        if (-not $Qmp.Socket.Poll([int]([math]::Min($remaining, 1) * 1e6), [Net.Sockets.SelectMode]::SelectRead)) {
            if ($Qmp.Raw.Process.HasExited) { throw (Get-RawExitText $Qmp.Raw) }
            continue
        }
        $got = $Qmp.Socket.Receive($Qmp.Buffer)
        if ($got -eq 0) { throw "QEMU closed its QMP socket. $(if ($Qmp.Raw.Process.HasExited) { Get-RawExitText $Qmp.Raw })" }
        $null = $Qmp.Pending.Append([Text.Encoding]::UTF8.GetString($Qmp.Buffer, 0, $got))
    }
}

function Invoke-RawQmp {
    <# Runs one QMP command and returns its 'return' value; events met on the way are recorded. #>
    param($Qmp, [string] $Command, $Arguments = $null)
    $msg = [ordered]@{ execute = $Command }
    if ($null -ne $Arguments) { $msg['arguments'] = $Arguments }
    $null = $Qmp.Socket.Send([Text.Encoding]::UTF8.GetBytes(($msg | ConvertTo-Json -Compress -Depth 6) + "`n"))
    while ($true) {
        $m = Read-QmpMessage $Qmp
        if ($m.PSObject.Properties['event']) {
            $Qmp.Events.Add([pscustomobject]@{ AtMs = [math]::Round($Qmp.Clock.Elapsed.TotalMilliseconds, 1); Event = $m.event; Data = $(if ($m.PSObject.Properties['data']) { $m.data | ConvertTo-Json -Compress } else { '' }) })
            continue
        }
        if ($m.PSObject.Properties['error']) { throw "QMP '$Command' failed: $($m.error.desc)" }
        if ($m.PSObject.Properties['return']) { return $m.return }
    }
}

function Connect-RawQmp {
    <# Connects to QEMU's QMP socket, reads the greeting and negotiates capabilities. #>
    param([string] $Path, $Raw, [Diagnostics.Stopwatch] $Clock)
    $socket = Connect-UnixSocket -Path $Path -Raw $Raw -TimeoutSec $BootTimeoutSec
    $qmp = [pscustomobject]@{
        Socket  = $socket
        Pending = [Text.StringBuilder]::new()
        Buffer  = [byte[]]::new(65536)
        Events  = [Collections.Generic.List[object]]::new()
        Clock   = $Clock
        Raw     = $Raw
    }
    $greeting = Read-QmpMessage $qmp
    if (-not $greeting.PSObject.Properties['QMP']) { $socket.Dispose(); throw "No QMP greeting on '$Path'." }
    $null = Invoke-RawQmp $qmp 'qmp_capabilities'
    $qmp
}

function Get-RawQmpStatus { param($Qmp) (Invoke-RawQmp $Qmp 'query-status').status }

function ConvertTo-RawArguments {
    <#
    The module's QEMU arguments with its VM folder replaced by $RawDir and the VM name by 'raw'. With
    -PlainMemory the guest's memory is QEMU's own (memory-backend-ram: anonymous memory, as a plain QEMU
    has it) instead of the module's memory file, same id and size, so the same states load.
    #>
    param([string[]] $ModuleArguments, [string] $VmDir, [string] $RawDir, [switch] $NoIncoming, [switch] $PlainMemory)
    $out = [Collections.Generic.List[string]]::new()
    for ($i = 0; $i -lt $ModuleArguments.Count; $i++) {
        $a = $ModuleArguments[$i]
        $prev = if ($i -gt 0) { $ModuleArguments[$i - 1] } else { '' }
        if ($NoIncoming -and $a -eq '-incoming') { $i++; continue }
        if ($prev -eq '-name') { $out.Add(($a -replace '^macvm-[^,]*', 'macvm-raw')); continue }
        if ($PlainMemory -and $prev -eq '-object' -and $a -match '^memory-backend-file,id=([^,]+),size=([^,]+),') {
            $out.Add("memory-backend-ram,id=$($Matches[1]),size=$($Matches[2])"); continue
        }
        $out.Add($a.Replace($VmDir, $RawDir))
    }
    , $out.ToArray()
}

#endregion

#region module helpers

function Get-QemuArgumentsOf {
    <# The arguments of a module VM's QEMU (from /proc), without the executable. #>
    param($Vm)
    if (-not $Vm.HypervisorProcessId) { throw "VM '$($Vm.Name)' reports no hypervisor process." }
    $cmd = @(Get-ProcessCommandLine $Vm.HypervisorProcessId)
    if ($cmd.Count -lt 2) { throw "Could not read the command line of QEMU (pid $($Vm.HypervisorProcessId)) of VM '$($Vm.Name)'." }
    , $cmd[1..($cmd.Count - 1)]
}

#endregion

#region measurements

function Invoke-RawRestore {
    <# One restore of the snapshot without the module; timings in ms since just before qemu-img. #>
    param([string] $Label, [switch] $Zstd)
    $dir = Join-Path $script:Store "raw-$Label"
    $null = New-Item -ItemType Directory -Path $dir
    $overlay = Join-Path $dir 'disk.qcow2'
    $arguments = ConvertTo-RawArguments $script:ModuleRestoreArguments $script:ModuleRestoreDir $dir -PlainMemory
    $source = if ($Zstd) { "exec:zstd -dc '$script:StateZst'" } else { "exec:cat '$script:RawStateFile'" }
    $raw = $null
    $qmp = $null
    $agent = $null
    try {
        $sw = [Diagnostics.Stopwatch]::StartNew()
        Invoke-Native $script:QemuImg @('create', '-q', '-f', 'qcow2', '-b', $script:SnapshotDisk, '-F', 'qcow2', $overlay)
        $overlayMs = $sw.Elapsed.TotalMilliseconds
        $raw = Start-RawQemu -Qemu $script:Qemu -Arguments $arguments -Tracker $script:RawProcesses
        $spawnMs = $sw.Elapsed.TotalMilliseconds
        $qmp = Connect-RawQmp -Path (Join-Path $dir 'qmp.sock') -Raw $raw -Clock $sw
        $qmpMs = $sw.Elapsed.TotalMilliseconds
        $status = Get-RawQmpStatus $qmp
        if ($status -ne 'inmigrate') { throw "Raw QEMU is '$status', not 'inmigrate', before migrate-incoming." }
        $null = Invoke-RawQmp $qmp 'migrate-incoming' @{ uri = $source }
        $polls = 0
        while ($true) {
            $polls++
            $status = Get-RawQmpStatus $qmp
            if ($status -eq 'paused') { break }
            $migration = Invoke-RawQmp $qmp 'query-migrate'
            if (($migration.PSObject.Properties['status'] -and $migration.status -eq 'failed') -or $raw.Process.HasExited) {
                throw "Raw QEMU could not load the state ($source). $(if ($raw.Process.HasExited) { Get-RawExitText $raw })"
            }
            if ($sw.Elapsed.TotalSeconds -gt $BootTimeoutSec) { throw "Raw QEMU did not load the state within $BootTimeoutSec s (status $status)." }
            Start-Sleep -Milliseconds $StatePollMs
        }
        $loadedMs = $sw.Elapsed.TotalMilliseconds
        $null = Invoke-RawQmp $qmp 'cont'
        $contMs = $sw.Elapsed.TotalMilliseconds
        $agent = Connect-UnixSocket -Path (Join-Path $dir 'agent.sock') -Raw $raw -TimeoutSec $BootTimeoutSec
        $agentMs = $sw.Elapsed.TotalMilliseconds
        $pong = Wait-AgentPong -Socket $agent -Raw $raw -TimeoutSec $BootTimeoutSec -PingIntervalMs $PingIntervalMs
        $pongMs = $sw.Elapsed.TotalMilliseconds
        $qemuCpu = Get-ProcCpuMs $raw.Process.Id
        $cloneBytes = Get-FileBytes $overlay
        [ordered]@{
            overlayMs        = [math]::Round($overlayMs, 1)
            spawnMs          = [math]::Round($spawnMs, 1)
            qmpConnectedMs   = [math]::Round($qmpMs, 1)
            stateLoadedMs    = [math]::Round($loadedMs, 1)
            contMs           = [math]::Round($contMs, 1)
            agentConnectedMs = [math]::Round($agentMs, 1)
            pongMs           = [math]::Round($pongMs, 1)
            statusPolls      = $polls
            pingsSent        = $pong.Sent
            qemuCpuMs        = $qemuCpu
            overlayAllocatedBytes = $cloneBytes.allocatedBytes
            events           = @($qmp.Events | Where-Object Event -in 'MIGRATION', 'RESUME', 'STOP')
        }
    }
    finally {
        if ($agent) { $agent.Dispose() }
        if ($qmp) { $qmp.Socket.Dispose() }
        Stop-RawQemu $raw -Tracker $script:RawProcesses
        Remove-Item -Recurse -Force $dir -ErrorAction Ignore
    }
}

function Invoke-ModuleRestore {
    <# One Restore-MacVmSnapshot to the first pong; timings in ms since just before the cmdlet. #>
    param([string] $Name, [switch] $KeepHostLog, [switch] $CaptureArguments)
    $vm = $null
    try {
        $startUtc = [DateTimeOffset]::UtcNow
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $vm = Restore-MacVmSnapshot -SnapshotName $SnapshotName -Name $Name -NoFallback -ErrorAction Stop
        $restoreMs = $sw.Elapsed.TotalMilliseconds
        $pong = Wait-ModulePong -Name $Name -Clock $sw -TimeoutSec $BootTimeoutSec
        $pongMs = $pong.AtMs
        if ($vm.Status.RestoredFrom -ne $SnapshotName) { throw "VM '$Name' was not restored from '$SnapshotName' (RestoredFrom '$($vm.Status.RestoredFrom)'; fallback: $($vm.Status.RestoreFallbackReason))." }
        $hostCpu = Get-ProcCpuMs $vm.HostProcessId
        $qemuCpu = if ($vm.HypervisorProcessId) { Get-ProcCpuMs $vm.HypervisorProcessId } else { $null }
        $disk = Get-FileBytes (Join-Path $vm.Path 'disk.qcow2')
        if ($CaptureArguments) {
            $script:ModuleRestoreArguments = Get-QemuArgumentsOf $vm
            $script:ModuleRestoreDir = $vm.Path
        }
        # The host writes its last lines (agent answered, clock set) a moment after the pong, at most.
        Start-Sleep -Milliseconds 150
        $hostLog = Join-Path $vm.Path 'host.log'
        $timeline = Read-HostLogTimeline -Path $hostLog -Start $startUtc -Events $HostLogEvents
        $timeline['restoreReturned'] = [math]::Round($restoreMs, 1)
        $timeline['pong'] = [math]::Round($pongMs, 1)
        if ($KeepHostLog) { Copy-Item $hostLog $script:HostLogCopy -Force }
        $removeMs = Measure-VmRemoval -Name $Name
        $vm = $null
        [ordered]@{
            pongMs         = [math]::Round($pongMs, 1)
            restoreMs      = [math]::Round($restoreMs, 1)
            pingAttempts   = $pong.Attempts
            pingRttMs      = [math]::Round($pong.Ping.RoundTripMs, 2)
            removeMs       = [math]::Round($removeMs, 1)
            hostCpuMs      = $hostCpu
            qemuCpuMs      = $qemuCpu
            diskAllocatedBytes = $disk.allocatedBytes
            diskApparentBytes  = $disk.apparentBytes
            timeline       = $timeline
        }
    }
    finally {
        if ($vm) { Remove-MacVm -Name $Name -Force -Confirm:$false -ErrorAction Ignore }
    }
}

function Invoke-RawParallelRestore {
    <#
    The same parallel restore without the module, for context: every step is issued to all the QEMUs
    before waiting on any (spawn all, migrate-incoming all, then cont each as it is paused, then ping
    each). Timings in ms since just before the first qemu-img.
    #>
    param([string] $Label)
    $runs = @(1..$ParallelCount | ForEach-Object {
            $dir = Join-Path $script:Store "rawp-$Label-$_"
            $null = New-Item -ItemType Directory -Path $dir
            [pscustomobject]@{ Dir = $dir; Raw = $null; Qmp = $null; Agent = $null }
        })
    try {
        $sw = [Diagnostics.Stopwatch]::StartNew()
        foreach ($r in $runs) {
            $overlay = Join-Path $r.Dir 'disk.qcow2'
            Invoke-Native $script:QemuImg @('create', '-q', '-f', 'qcow2', '-b', $script:SnapshotDisk, '-F', 'qcow2', $overlay)
            $r.Raw = Start-RawQemu -Qemu $script:Qemu -Arguments (ConvertTo-RawArguments $script:ModuleRestoreArguments $script:ModuleRestoreDir $r.Dir -PlainMemory) -Tracker $script:RawProcesses
        }
        foreach ($r in $runs) {
            $r.Qmp = Connect-RawQmp -Path (Join-Path $r.Dir 'qmp.sock') -Raw $r.Raw -Clock $sw
            $null = Invoke-RawQmp $r.Qmp 'migrate-incoming' @{ uri = "exec:cat '$script:RawStateFile'" }
        }
        foreach ($r in $runs) {
            while ((Get-RawQmpStatus $r.Qmp) -ne 'paused') {
                if ($r.Raw.Process.HasExited) { throw "Raw QEMU could not load the state. $(Get-RawExitText $r.Raw)" }
                if ($sw.Elapsed.TotalSeconds -gt $BootTimeoutSec) { throw "Raw QEMU did not load the state within $BootTimeoutSec s." }
                Start-Sleep -Milliseconds $StatePollMs
            }
            $null = Invoke-RawQmp $r.Qmp 'cont'
        }
        foreach ($r in $runs) {
            $r.Agent = Connect-UnixSocket -Path (Join-Path $r.Dir 'agent.sock') -Raw $r.Raw -TimeoutSec $BootTimeoutSec
            $null = Wait-AgentPong -Socket $r.Agent -Raw $r.Raw -TimeoutSec $BootTimeoutSec -PingIntervalMs $PingIntervalMs
        }
        [ordered]@{ allAnsweredMs = [math]::Round($sw.Elapsed.TotalMilliseconds, 1) }
    }
    finally {
        foreach ($r in $runs) {
            if ($r.Agent) { $r.Agent.Dispose() }
            if ($r.Qmp) { $r.Qmp.Socket.Dispose() }
            if ($r.Raw) { Stop-RawQemu $r.Raw -Tracker $script:RawProcesses }
            Remove-Item -Recurse -Force $r.Dir -ErrorAction Ignore
        }
    }
}

function Invoke-ModuleParallelRestore {
    <# Restore-MacVmSnapshot -Count 4, then each guest pinged in turn; timings in ms since just before the cmdlet. #>
    param([string] $Prefix)
    $vms = @()
    try {
        $startUtc = [DateTimeOffset]::UtcNow
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $vms = @(Restore-MacVmSnapshot -SnapshotName $SnapshotName -Name $Prefix -Count $ParallelCount -NoFallback -ErrorAction Stop)
        $restoreMs = $sw.Elapsed.TotalMilliseconds
        # Disk used by each clone before anything is asked of its guest.
        $disks = @($vms | ForEach-Object { Get-FileBytes (Join-Path $_.Path 'disk.qcow2') })
        $pongs = [ordered]@{}
        foreach ($vm in $vms) { $pongs[$vm.Name] = [math]::Round((Wait-ModulePong -Name $vm.Name -Clock $sw -TimeoutSec $BootTimeoutSec).AtMs, 1) }
        $allMs = $sw.Elapsed.TotalMilliseconds
        if ($vms.Count -ne $ParallelCount) { throw "Restore-MacVmSnapshot -Count $ParallelCount returned $($vms.Count) VMs." }
        foreach ($vm in $vms) { if ($vm.Status.RestoredFrom -ne $SnapshotName) { throw "VM '$($vm.Name)' was not restored from '$SnapshotName'." } }
        Start-Sleep -Milliseconds 150
        $timelines = [ordered]@{}
        foreach ($vm in $vms) { $timelines[$vm.Name] = Read-HostLogTimeline -Path (Join-Path $vm.Path 'host.log') -Start $startUtc -Events $HostLogEvents }
        $sw.Restart()
        $vms | Remove-MacVm -Force -Confirm:$false -ErrorAction Stop
        $removeMs = $sw.Elapsed.TotalMilliseconds
        $vms = @()
        [ordered]@{
            allAnsweredMs      = [math]::Round($allMs, 1)
            restoreMs          = [math]::Round($restoreMs, 1)
            pongMs             = $pongs
            removeMs           = [math]::Round($removeMs, 1)
            diskAllocatedBytes = @($disks | ForEach-Object { $_.allocatedBytes })
            diskApparentBytes  = @($disks | ForEach-Object { $_.apparentBytes })
            timelines          = $timelines
        }
    }
    finally {
        if ($vms.Count) { $vms | Remove-MacVm -Force -Confirm:$false -ErrorAction Ignore }
    }
}

function Invoke-ModuleBoot {
    <# One New-MacVm cold boot to the first pong; ms since just before New-MacVm. #>
    param([string] $Name)
    $vm = $null
    try {
        $startUtc = [DateTimeOffset]::UtcNow
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $vm = New-MacVm -Name $Name -Image tiny -Accelerator Tcg -ErrorAction Stop
        $newMs = $sw.Elapsed.TotalMilliseconds
        $pong = Wait-ModulePong -Name $Name -Clock $sw -TimeoutSec $BootTimeoutSec
        $timeline = Read-HostLogTimeline -Path (Join-Path $vm.Path 'host.log') -Start $startUtc -Events $HostLogEvents
        Remove-MacVm -Name $Name -Force -Confirm:$false -ErrorAction Stop
        $vm = $null
        [ordered]@{
            pongMs       = [math]::Round($pong.AtMs, 1)
            newMacVmMs   = [math]::Round($newMs, 1)
            pingAttempts = $pong.Attempts
            timeline     = $timeline
        }
    }
    finally {
        if ($vm) { Remove-MacVm -Name $Name -Force -Confirm:$false -ErrorAction Ignore }
    }
}

function New-RawState {
    <#
    The snapshot's machine state as plain QEMU saves one, for the raw restores: the memory inside the
    migration stream. A raw QEMU with the module's restore arguments loads the snapshot (devices from
    state.bin, memory mapped from memory.bin, x-ignore-shared) and, still paused, migrates to a file with
    x-ignore-shared off. Same guest, same instant, same disk layer; only the format differs.
    #>
    $dir = Join-Path $script:Store 'raw-convert'
    $null = New-Item -ItemType Directory -Path $dir
    $overlay = Join-Path $dir 'disk.qcow2'
    $target = Join-Path $script:Store 'raw-state.bin'
    $raw = $null
    $qmp = $null
    try {
        Invoke-Native $script:QemuImg @('create', '-q', '-f', 'qcow2', '-b', $script:SnapshotDisk, '-F', 'qcow2', $overlay)
        $raw = Start-RawQemu -Qemu $script:Qemu -Arguments (ConvertTo-RawArguments $script:ModuleRestoreArguments $script:ModuleRestoreDir $dir) -Tracker $script:RawProcesses
        $qmp = Connect-RawQmp -Path (Join-Path $dir 'qmp.sock') -Raw $raw -Clock ([Diagnostics.Stopwatch]::StartNew())
        $shared = { param([bool] $On) $null = Invoke-RawQmp $qmp 'migrate-set-capabilities' @{ capabilities = @(@{ capability = 'x-ignore-shared'; state = $On }) } }
        & $shared $true
        $null = Invoke-RawQmp $qmp 'migrate-incoming' @{ uri = "exec:cat '$script:StateFile'" }
        $sw = [Diagnostics.Stopwatch]::StartNew()
        while ((Get-RawQmpStatus $qmp) -ne 'paused') {
            if ($raw.Process.HasExited) { throw "Raw QEMU could not load the snapshot. $(Get-RawExitText $raw)" }
            if ($sw.Elapsed.TotalSeconds -gt $BootTimeoutSec) { throw "Raw QEMU did not load the snapshot within $BootTimeoutSec s." }
            Start-Sleep -Milliseconds $StatePollMs
        }
        & $shared $false
        $null = Invoke-RawQmp $qmp 'migrate-set-parameters' @{ 'max-bandwidth' = [long]([long]::MaxValue -shr 1) }
        $null = Invoke-RawQmp $qmp 'migrate' @{ uri = "exec:cat > '$target'" }
        while (($status = (Invoke-RawQmp $qmp 'query-migrate').status) -ne 'completed') {
            if ($status -in 'failed', 'cancelled') { throw "Raw QEMU could not write the state to '$target': $status" }
            if ($sw.Elapsed.TotalSeconds -gt $BootTimeoutSec) { throw "Raw QEMU did not write the state within $BootTimeoutSec s." }
            Start-Sleep -Milliseconds $StatePollMs
        }
        $target
    }
    finally {
        if ($qmp) { $qmp.Socket.Dispose() }
        Stop-RawQemu $raw -Tracker $script:RawProcesses
        Remove-Item -Recurse -Force $dir -ErrorAction Ignore
    }
}

function Start-RawSaver {
    <# Boots a raw QEMU of the test guest (the module's cold-boot arguments) and waits for its agent. #>
    $dir = Join-Path $script:Store 'raw-saver'
    $null = New-Item -ItemType Directory -Path $dir
    $overlay = Join-Path $dir 'disk.qcow2'
    Invoke-Native $script:QemuImg @('create', '-q', '-f', 'qcow2', '-b', $script:ImageDisk, '-F', 'qcow2', $overlay)
    $arguments = ConvertTo-RawArguments $script:ModuleRestoreArguments $script:ModuleRestoreDir $dir -NoIncoming -PlainMemory
    $sw = [Diagnostics.Stopwatch]::StartNew()
    $raw = Start-RawQemu -Qemu $script:Qemu -Arguments $arguments -Tracker $script:RawProcesses
    $qmp = Connect-RawQmp -Path (Join-Path $dir 'qmp.sock') -Raw $raw -Clock $sw
    $agent = Connect-UnixSocket -Path (Join-Path $dir 'agent.sock') -Raw $raw -TimeoutSec $BootTimeoutSec
    $pong = Wait-AgentPong -Socket $agent -Raw $raw -TimeoutSec $BootTimeoutSec -PingIntervalMs $PingIntervalMs
    [pscustomobject]@{ Dir = $dir; Raw = $raw; Qmp = $qmp; Agent = $agent; NextToken = $pong.LastToken + 1; Generation = 0; BootMs = $sw.Elapsed.TotalMilliseconds }
}

function Invoke-RawSave {
    <# The module's save sequence by hand on the raw VM; ms since just before 'stop'. #>
    param($Saver, [string] $Label)
    $qmp = $Saver.Qmp
    $state = Join-Path $Saver.Dir "state-$Label.bin"
    $node = if ($Saver.Generation -eq 0) { 'disk0' } else { "disk0-$($Saver.Generation)" }
    $next = "disk0-$($Saver.Generation + 1)"
    $newDisk = Join-Path $Saver.Dir "disk-$($Saver.Generation + 1).qcow2"
    $sw = [Diagnostics.Stopwatch]::StartNew()
    $null = Invoke-RawQmp $qmp 'stop'
    $blocks = @(Invoke-RawQmp $qmp 'query-block')
    $frozen = @($blocks | Where-Object { $_.PSObject.Properties['inserted'] } | ForEach-Object { $_.inserted.file }) | Select-Object -First 1
    if (-not $frozen) { throw 'Raw QEMU reports no disk to freeze.' }
    $null = Invoke-RawQmp $qmp 'blockdev-snapshot-sync' ([ordered]@{ 'node-name' = $node; 'snapshot-file' = $newDisk; 'snapshot-node-name' = $next; format = 'qcow2' })
    $Saver.Generation++
    $null = Invoke-RawQmp $qmp 'migrate-set-parameters' @{ 'max-bandwidth' = [long]([long]::MaxValue -shr 1) }
    $migrateAt = $sw.Elapsed.TotalMilliseconds
    $null = Invoke-RawQmp $qmp 'migrate' @{ uri = "exec:cat > '$state'" }
    $polls = 0
    while ($true) {
        $polls++
        $info = Invoke-RawQmp $qmp 'query-migrate'
        $status = if ($info.PSObject.Properties['status']) { $info.status } else { '' }
        if ($status -eq 'completed') { break }
        if ($status -in 'failed', 'cancelled') { throw "Raw QEMU could not write the state to '$state': $status" }
        if ($sw.Elapsed.TotalSeconds -gt $BootTimeoutSec) { throw "Raw save did not complete within $BootTimeoutSec s." }
        Start-Sleep -Milliseconds $StatePollMs
    }
    $migratedMs = $sw.Elapsed.TotalMilliseconds
    $null = Invoke-RawQmp $qmp 'cont'
    $totalMs = $sw.Elapsed.TotalMilliseconds
    $size = (Get-Item $state).Length
    # The guest goes on (untimed check), and the scratch state goes away.
    $pong = Wait-AgentPong -Socket $Saver.Agent -Raw $Saver.Raw -TimeoutSec 30 -FirstToken $Saver.NextToken -PingIntervalMs $PingIntervalMs
    $Saver.NextToken = $pong.LastToken + 1
    Remove-Item $state -Force
    [ordered]@{
        saveMs      = [math]::Round($totalMs, 1)
        migrateMs   = [math]::Round($migratedMs - $migrateAt, 1)
        beforeMigrateMs = [math]::Round($migrateAt, 1)
        polls       = $polls
        stateBytes  = $size
    }
}

function Invoke-ModuleSave {
    <# One Save-MacVm of the running module VM; the snapshot is removed afterwards (untimed). #>
    param([string] $Vm, [string] $Label)
    $name = "save-$Label"
    $snapshot = $null
    $pausedMs = $null
    $hostReturnedMs = $null
    $sw = [Diagnostics.Stopwatch]::StartNew()
    # The verbose line 'Saved ... (paused N ms)' is written as soon as the host's save call returned.
    Save-MacVm -Name $Vm -SnapshotName $name -PassThru -Verbose -ErrorAction Stop 4>&1 | ForEach-Object {
        if ($_ -is [Management.Automation.VerboseRecord]) {
            if ($_.Message -match 'paused (\d+(?:\.\d+)?) ms') { $pausedMs = [double]$Matches[1]; $hostReturnedMs = $sw.Elapsed.TotalMilliseconds }
        }
        else { $snapshot = $_ }
    }
    $saveMs = $sw.Elapsed.TotalMilliseconds
    if (-not $snapshot) { throw "Save-MacVm -PassThru returned no snapshot for '$name'." }
    $state = @($snapshot.Files | Where-Object Role -eq 'state')[0]
    $null = Wait-ModulePong -Name $Vm -Clock ([Diagnostics.Stopwatch]::StartNew()) -TimeoutSec $BootTimeoutSec
    Remove-MacVmSnapshot -Name $name -Force -Confirm:$false -ErrorAction Stop
    [ordered]@{
        saveMs     = [math]::Round($saveMs, 1)
        pausedMs   = $pausedMs
        # When the host's save call had returned (the guest already resumed); the rest is checksums and the manifest.
        hostSaveReturnedMs = $(if ($null -ne $hostReturnedMs) { [math]::Round($hostReturnedMs, 1) } else { $null })
        stateBytes = $state.SizeBytes
    }
}

#endregion

$exitCode = 0
$script:Store = $null
$script:RawProcesses = [Collections.Generic.List[Diagnostics.Process]]::new()
$script:ModuleRestoreArguments = $null
$script:ModuleRestoreDir = $null
$rawSaver = $null
$leftovers = @()
try {
    $ModulePath = (Resolve-Path $ModulePath).Path
    $GuestDir = (Resolve-Path $GuestDir).Path
    $OutFile = [IO.Path]::GetFullPath($OutFile)
    $script:HostLogCopy = [IO.Path]::ChangeExtension($OutFile, $null).TrimEnd('.') + '-restore-host.log'
    $null = New-Item -ItemType Directory -Force -Path (Split-Path -Parent $OutFile)
    $meta = Get-Content -Raw (Join-Path $GuestDir 'guest.json') | ConvertFrom-Json
    $guest = Get-TestGuest -GuestDir $GuestDir -Meta $meta
    $script:Qemu = (Get-Command qemu-system-x86_64 -CommandType Application).Source | Select-Object -First 1
    $script:QemuImg = (Get-Command qemu-img -CommandType Application).Source | Select-Object -First 1
    $zstd = (Get-Command zstd -CommandType Application -ErrorAction Ignore).Source | Select-Object -First 1
    if (-not $zstd) { throw "zstd is not installed (apt-get install zstd): it is needed for the compressed-state figures." }
    $script:Store = New-ScratchStore
    $env:MACVM_HOME = $script:Store
    Import-Module $ModulePath -Force
    # The checksum timing uses the module's own hashing library (its copy in lib/).
    Add-Type -Path (Join-Path (Split-Path -Parent $ModulePath) 'lib/System.IO.Hashing.dll')
    $module = Get-Module MacVm
    $image = Import-MacVmImage -Name tiny -Kernel $guest.Kernel -Initrd $guest.Initrd -Disk $guest.Disk `
        -KernelCommandLine $guest.CommandLine -GuestAgent -ReadyMarker 'MACVM-GUEST-READY'
    $script:ImageDisk = Join-Path $image.Path $image.Disk

    $loadBefore = Get-LoadAverage
    Write-Host "MacVm snapshot benchmarks: $Runs rounds, module $($module.Version) from $ModulePath, store $script:Store"
    Write-Host "  $([Environment]::ProcessorCount) CPUs, load average $loadBefore, $(Get-ForeignVmCount -Store $script:Store) other QEMU processes; $((& $script:Qemu --version | Select-Object -First 1))"

    # The snapshot every restore uses: a cold-booted guest, saved once its agent answered, then stopped.
    Write-Host "== Snapshot '$SnapshotName' of a freshly booted guest"
    $src = New-MacVm -Name src -Image tiny -Accelerator Tcg -ErrorAction Stop
    $null = Wait-ModulePong -Name src -Clock ([Diagnostics.Stopwatch]::StartNew()) -TimeoutSec $BootTimeoutSec
    $base = Save-MacVm -Name src -SnapshotName $SnapshotName -Stop -PassThru -ErrorAction Stop
    $script:StateFile = Join-Path $base.Path 'state.bin'
    $script:MemoryFile = Join-Path $base.Path 'memory.bin'
    $script:SnapshotDisk = Join-Path $base.Path 'disk.qcow2'
    if (-not (Test-Path $script:MemoryFile)) { throw "Snapshot '$SnapshotName' has no memory image (memory.bin): the module did not save the memory beside the state." }
    Write-Host ('  state.bin {0:0.0} MB, memory.bin {1:0.0} MB ({2:0.0} MB allocated), disk.qcow2 {3:0.0} MB' -f ((Get-Item $script:StateFile).Length / 1MB),
        ((Get-Item $script:MemoryFile).Length / 1MB), ((Get-FileBytes $script:MemoryFile).allocatedBytes / 1MB), ((Get-Item $script:SnapshotDisk).Length / 1MB))

    # Warm-up round (not counted): JIT of the cmdlets in this session, page cache; captures the module's QEMU arguments.
    Write-Host '== Warm-up round (not counted)'
    $warm = [ordered]@{}
    $warm.moduleRestore = Invoke-ModuleRestore -Name 'warm' -CaptureArguments
    # The raw restores load the same instant as plain QEMU saves it (memory in the stream).
    $script:RawStateFile = New-RawState
    $script:StateZst = Join-Path $script:Store 'raw-state.bin.zst'
    Invoke-Native $zstd @('-1', '-q', '-f', '-o', $script:StateZst, $script:RawStateFile)
    Write-Host ('  the same state as plain QEMU writes it (memory in the stream): {0:0.0} MB' -f ((Get-Item $script:RawStateFile).Length / 1MB))
    $warm.rawRestore = Invoke-RawRestore -Label 'warm'
    $warm.rawZstdRestore = Invoke-RawRestore -Label 'warmz' -Zstd
    $warm.parallel = Invoke-ModuleParallelRestore -Prefix 'warmp'
    $warm.coldBoot = Invoke-ModuleBoot -Name 'warmb'
    Write-Host ('  restore: raw {0:0} ms, module {1:0} ms; x{2}: {3:0} ms; cold boot {4:0} ms' -f $warm.rawRestore.pongMs, $warm.moduleRestore.pongMs, $ParallelCount, $warm.parallel.allAnsweredMs, $warm.coldBoot.pongMs)

    Write-Host "== Restore rounds (raw, raw via zstd, module, module x$ParallelCount, cold boot)"
    $rounds = [Collections.Generic.List[object]]::new()
    for ($i = 1; $i -le $Runs; $i++) {
        $round = [ordered]@{ round = $i; foreignQemuAtStart = Get-ForeignVmCount -Store $script:Store; loadAverage = (Get-Content /proc/loadavg).Split(' ')[0] }
        $round.rawRestore = Invoke-RawRestore -Label "r$i"
        $round.rawZstdRestore = Invoke-RawRestore -Label "z$i" -Zstd
        $round.checksumMs = [math]::Round((Measure-ChecksumMs @($script:StateFile, $script:MemoryFile, $script:SnapshotDisk)), 1)
        $round.moduleRestore = Invoke-ModuleRestore -Name "m$i" -KeepHostLog:($i -eq $Runs)
        $round.parallel = Invoke-ModuleParallelRestore -Prefix "p$i"
        $round.rawParallel = Invoke-RawParallelRestore -Label "$i"
        $round.coldBoot = Invoke-ModuleBoot -Name "b$i"
        $rounds.Add($round)
        Write-Host ('  round {0}: restore raw {1,5:0} ms, module {2,5:0} ms (returned {3:0}); raw zstd {4,5:0}; x{5} {6,5:0} ms; cold boot {7,5:0} ms; checksums {8:0} ms; other QEMUs {9}, load {10}' -f
            $i, $round.rawRestore.pongMs, $round.moduleRestore.pongMs, $round.moduleRestore.restoreMs, $round.rawZstdRestore.pongMs,
            $ParallelCount, $round.parallel.allAnsweredMs, $round.coldBoot.pongMs, $round.checksumMs, $round.foreignQemuAtStart, $round.loadAverage)
    }

    Write-Host '== Save rounds (raw QMP, then Save-MacVm), a module VM and a raw VM running'
    $saver = New-MacVm -Name saver -Image tiny -Accelerator Tcg -ErrorAction Stop
    $null = Wait-ModulePong -Name saver -Clock ([Diagnostics.Stopwatch]::StartNew()) -TimeoutSec $BootTimeoutSec
    $saverArguments = Get-QemuArgumentsOf $saver
    $rawSaver = Start-RawSaver
    $restoreComparable = ConvertTo-ComparableArguments @($script:ModuleRestoreArguments | Select-Object -SkipLast 2) $script:ModuleRestoreDir
    $saverComparable = ConvertTo-ComparableArguments $saverArguments $saver.Path
    $argumentsMatch = (@($script:ModuleRestoreArguments)[-2..-1] -join ' ') -eq '-incoming defer' -and (($restoreComparable -join "`n") -ceq ($saverComparable -join "`n"))
    $warm.rawSave = Invoke-RawSave -Saver $rawSaver -Label 'warm'
    $warm.moduleSave = Invoke-ModuleSave -Vm saver -Label 'warm'
    $saves = [Collections.Generic.List[object]]::new()
    for ($i = 1; $i -le $Runs; $i++) {
        $pair = [ordered]@{ round = $i; foreignQemuAtStart = Get-ForeignVmCount -Store $script:Store }
        $pair.raw = Invoke-RawSave -Saver $rawSaver -Label "$i"
        $pair.module = Invoke-ModuleSave -Vm saver -Label "$i"
        $saves.Add($pair)
        Write-Host ('  round {0}: raw {1,5:0} ms (migrate {2:0} ms, {3:0.0} MB), module {4,5:0} ms (host call returned at {5:0} ms, paused {6:0} ms, {7:0.0} MB)' -f
            $i, $pair.raw.saveMs, $pair.raw.migrateMs, ($pair.raw.stateBytes / 1MB), $pair.module.saveMs, $pair.module.hostSaveReturnedMs, $pair.module.pausedMs, ($pair.module.stateBytes / 1MB))
    }
    Remove-MacVm -Name saver -Force -Confirm:$false
    $rawSaver.Agent.Dispose()
    $rawSaver.Qmp.Socket.Dispose()
    Stop-RawQemu $rawSaver.Raw -Tracker $script:RawProcesses
    $rawSaver = $null

    Write-Host '== Sizes, compression, host start-up'
    $stateBytes = Get-FileBytes $script:StateFile
    $memoryBytes = Get-FileBytes $script:MemoryFile
    $rawStateBytes = Get-FileBytes $script:RawStateFile
    $diskBytes = Get-FileBytes $script:SnapshotDisk
    # What compression would give: the memory image through zstd -1 (the module does not compress:
    # a compressed image cannot be mapped).
    $memoryZst = Join-Path $script:Store 'memory.bin.zst'
    $compressMs = [Collections.Generic.List[double]]::new()
    $decompressMs = [Collections.Generic.List[double]]::new()
    $catMs = [Collections.Generic.List[double]]::new()
    for ($i = 1; $i -le $Runs; $i++) {
        $sw = [Diagnostics.Stopwatch]::StartNew()
        Invoke-Native $zstd @('-1', '-q', '-f', '-o', $memoryZst, $script:MemoryFile)
        $compressMs.Add($sw.Elapsed.TotalMilliseconds)
        $sw.Restart()
        Invoke-Native 'sh' @('-c', 'zstd -dc "$1" > /dev/null', 'sh', $memoryZst)
        $decompressMs.Add($sw.Elapsed.TotalMilliseconds)
        $sw.Restart()
        Invoke-Native 'sh' @('-c', 'cat "$1" > /dev/null', 'sh', $script:MemoryFile)
        $catMs.Add($sw.Elapsed.TotalMilliseconds)
    }
    $zstdBytes = (Get-Item $memoryZst).Length
    # The host executable's bare start-up (runtime, System.CommandLine): what launching a host costs before it does anything.
    $hostExe = Join-Path (Split-Path -Parent $ModulePath) 'lib/MacVm.Host'
    $runtimeDir = [Runtime.InteropServices.RuntimeEnvironment]::GetRuntimeDirectory().TrimEnd('/')
    $dotnetRoot = Split-Path -Parent (Split-Path -Parent (Split-Path -Parent $runtimeDir))
    if (Test-Path (Join-Path $dotnetRoot 'dotnet')) { $env:DOTNET_ROOT = $dotnetRoot }
    $hostHelpMs = [Collections.Generic.List[double]]::new()
    $fsyncMs = [Collections.Generic.List[double]]::new()
    $null = & $hostExe --help
    for ($i = 1; $i -le $Runs; $i++) {
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $null = & $hostExe --help
        $hostHelpMs.Add($sw.Elapsed.TotalMilliseconds)
        $fsyncMs.Add((Measure-FsyncWriteMs $script:Store))
    }
    $loadAfter = Get-LoadAverage

    # Figures.
    $rawRestore = Get-Stats @($rounds | ForEach-Object { $_.rawRestore.pongMs })
    $modRestore = Get-Stats @($rounds | ForEach-Object { $_.moduleRestore.pongMs })
    $restoreRatio = [math]::Round($modRestore.median / $rawRestore.median, 3)
    $restorePairs = Get-Stats @($rounds | ForEach-Object { $_.moduleRestore.pongMs / $_.rawRestore.pongMs }) -Digits 3
    $cold = Get-Stats @($rounds | ForEach-Object { $_.coldBoot.pongMs })
    $speedup = [math]::Round($cold.median / $modRestore.median, 2)
    $speedupPairs = Get-Stats @($rounds | ForEach-Object { $_.coldBoot.pongMs / $_.moduleRestore.pongMs }) -Digits 2
    $par = Get-Stats @($rounds | ForEach-Object { $_.parallel.allAnsweredMs })
    $parRatio = [math]::Round($par.median / $modRestore.median, 3)
    $parPairs = Get-Stats @($rounds | ForEach-Object { $_.parallel.allAnsweredMs / $_.moduleRestore.pongMs }) -Digits 3
    $rawPar = Get-Stats @($rounds | ForEach-Object { $_.rawParallel.allAnsweredMs })
    $rawParRatio = [math]::Round($rawPar.median / $rawRestore.median, 3)
    $cloneAlloc = @($rounds | ForEach-Object { $_.parallel.diskAllocatedBytes } | ForEach-Object { $_ })
    $cloneStats = Get-Stats @($cloneAlloc | ForEach-Object { $_ / 1KB })
    $cloneMaxBytes = ($cloneAlloc | Measure-Object -Maximum).Maximum
    $rawSave = Get-Stats @($saves | ForEach-Object { $_.raw.saveMs })
    $modSave = Get-Stats @($saves | ForEach-Object { $_.module.saveMs })
    $saveRatio = [math]::Round($modSave.median / $rawSave.median, 3)
    $savePairs = Get-Stats @($saves | ForEach-Object { $_.module.saveMs / $_.raw.saveMs }) -Digits 3
    $sha = Get-Stats @($rounds | ForEach-Object { $_.checksumMs })
    $rawZstd = Get-Stats @($rounds | ForEach-Object { $_.rawZstdRestore.pongMs })

    $modulePhaseNames = @('hostStarted', 'qemuStarted', 'qmpConnected', 'migrationSetup', 'resumed', 'stateLoaded', 'restoreReturned', 'agentAnswered', 'pong', 'clockSet')
    $modulePhases = [ordered]@{}
    foreach ($p in $modulePhaseNames) {
        $values = @($rounds | Where-Object { $_.moduleRestore.timeline.Contains($p) } | ForEach-Object { $_.moduleRestore.timeline[$p] })
        if ($values.Count) { $modulePhases[$p] = Get-Stats $values }
    }
    $rawPhaseNames = @('overlayMs', 'spawnMs', 'qmpConnectedMs', 'stateLoadedMs', 'contMs', 'agentConnectedMs', 'pongMs')
    $rawPhases = [ordered]@{}
    foreach ($p in $rawPhaseNames) { $rawPhases[$p] = Get-Stats @($rounds | ForEach-Object { $_.rawRestore[$p] }) }
    # Per-step durations (medians of the per-run differences): where the module's extra time goes.
    $step = {
        param([string] $From, [string] $To)
        $values = @($rounds | Where-Object { $_.moduleRestore.timeline.Contains($From) -and $_.moduleRestore.timeline.Contains($To) } |
            ForEach-Object { $_.moduleRestore.timeline[$To] - $_.moduleRestore.timeline[$From] })
        Get-Median $values
    }
    $moduleSteps = [ordered]@{
        cmdletToHostStarted   = Get-Median @($rounds | Where-Object { $_.moduleRestore.timeline.Contains('hostStarted') } | ForEach-Object { $_.moduleRestore.timeline.hostStarted })
        hostStartedToQemu     = & $step 'hostStarted' 'qemuStarted'
        qemuToQmpConnected    = & $step 'qemuStarted' 'qmpConnected'
        qmpToStateLoaded      = & $step 'qmpConnected' 'stateLoaded'
        stateLoadedToReturned = & $step 'stateLoaded' 'restoreReturned'
        returnedToPong        = & $step 'restoreReturned' 'pong'
    }
    $rawSteps = [ordered]@{
        overlay           = $rawPhases.overlayMs.median
        spawn             = Get-Median @($rounds | ForEach-Object { $_.rawRestore.spawnMs - $_.rawRestore.overlayMs })
        spawnToQmp        = Get-Median @($rounds | ForEach-Object { $_.rawRestore.qmpConnectedMs - $_.rawRestore.spawnMs })
        qmpToStateLoaded  = Get-Median @($rounds | ForEach-Object { $_.rawRestore.stateLoadedMs - $_.rawRestore.qmpConnectedMs })
        loadedToPong      = Get-Median @($rounds | ForEach-Object { $_.rawRestore.pongMs - $_.rawRestore.stateLoadedMs })
    }

    $results = [ordered]@{
        schemaVersion = 1
        benchmark     = 'snapshots'
        timestampUtc  = [DateTimeOffset]::UtcNow.ToString('o')
        runs          = $Runs
        machine       = Get-MachineInfo -LoadAverageStart $loadBefore -LoadAverageEnd $loadAfter -Qemu $script:Qemu -Extra ([ordered]@{ zstd = (& $zstd --version) })
        module        = [ordered]@{ path = $ModulePath; version = "$($module.Version)" }
        guest         = [ordered]@{ dir = $GuestDir; kernelRelease = $meta.kernelRelease; cmdline = $meta.cmdline; memoryMB = 256; accelerator = 'tcg' }
        # The raw QEMUs ran with the module's arguments (captured from a restored VM's QEMU); this says whether a cold-booted VM's are the same minus '-incoming defer'.
        qemuArgumentsMatch = $argumentsMatch
        restore       = [ordered]@{
            rawMs              = $rawRestore
            moduleMs           = $modRestore
            ratio              = $restoreRatio
            pairRatios         = $restorePairs
            target             = $RestoreRatioTarget
            pass               = $restoreRatio -le $RestoreRatioTarget
            moduleReturnedMs   = Get-Stats @($rounds | ForEach-Object { $_.moduleRestore.restoreMs })
            moduleTimelineMs   = $modulePhases
            moduleStepsMedianMs = $moduleSteps
            rawPhasesMs        = $rawPhases
            rawStepsMedianMs   = $rawSteps
            # What the engine does before it launches a host, measured apart (warm page cache):
            checksumVerifyMs   = $sha
            qemuImgOverlayMs   = $rawPhases.overlayMs
            hostExeHelpMs      = Get-Stats $hostHelpMs
            fsyncSmallWriteMs  = Get-Stats $fsyncMs -Digits 2
            rawFromZstdMs      = $rawZstd
            cpuMedianMs        = [ordered]@{
                rawQemu    = Get-Median @($rounds | ForEach-Object { $_.rawRestore.qemuCpuMs })
                moduleQemu = Get-Median @($rounds | ForEach-Object { $_.moduleRestore.qemuCpuMs })
                moduleHost = Get-Median @($rounds | ForEach-Object { $_.moduleRestore.hostCpuMs })
            }
        }
        coldBoot      = [ordered]@{
            moduleMs        = $cold
            restoreMs       = $modRestore
            speedup         = $speedup
            pairSpeedups    = $speedupPairs
            target          = $ColdBootSpeedupTarget
            pass            = $speedup -ge $ColdBootSpeedupTarget
            newMacVmMs      = Get-Stats @($rounds | ForEach-Object { $_.coldBoot.newMacVmMs })
        }
        save          = [ordered]@{
            rawMs         = $rawSave
            moduleMs      = $modSave
            ratio         = $saveRatio
            pairRatios    = $savePairs
            target        = $SaveRatioTarget
            pass          = $saveRatio -le $SaveRatioTarget
            modulePausedMs = Get-Stats @($saves | Where-Object { $null -ne $_.module.pausedMs } | ForEach-Object { $_.module.pausedMs })
            # Cmdlet start → the host's save call returned (the rest: checksums, manifest, rename).
            moduleHostReturnedMs = Get-Stats @($saves | Where-Object { $null -ne $_.module.hostSaveReturnedMs } | ForEach-Object { $_.module.hostSaveReturnedMs })
            rawMigrateMs  = Get-Stats @($saves | ForEach-Object { $_.raw.migrateMs })
            rawStateMB    = Get-Stats @($saves | ForEach-Object { $_.raw.stateBytes / 1MB }) -Digits 2
            moduleStateMB = Get-Stats @($saves | ForEach-Object { $_.module.stateBytes / 1MB }) -Digits 2
            runs          = $saves
        }
        parallel      = [ordered]@{
            count             = $ParallelCount
            allAnsweredMs     = $par
            singleRestoreMs   = $modRestore
            ratio             = $parRatio
            pairRatios        = $parPairs
            target            = $ParallelRatioTarget
            pass              = $parRatio -le $ParallelRatioTarget
            returnedMs        = Get-Stats @($rounds | ForEach-Object { $_.parallel.restoreMs })
            # Context: the same four restores scripted without the module, against one raw restore.
            rawAllAnsweredMs  = $rawPar
            rawRatio          = $rawParRatio
            moduleOverRaw     = [math]::Round($par.median / $rawPar.median, 3)
            cloneDiskAllocatedKB = $cloneStats
            cloneDiskMaxBytes = $cloneMaxBytes
            cloneDiskTargetBytes = $CloneDiskTargetBytes
            cloneDiskPass     = $cloneMaxBytes -le $CloneDiskTargetBytes
            singleCloneDiskAllocatedKB = Get-Stats @($rounds | ForEach-Object { $_.moduleRestore.diskAllocatedBytes / 1KB })
        }
        snapshotSize  = [ordered]@{
            stateBin       = $stateBytes
            memoryBin      = $memoryBytes
            diskQcow2      = $diskBytes
            plainQemuStateBin = $rawStateBytes
            memoryZstd1Bytes = $zstdBytes
            zstdRatio      = [math]::Round($memoryBytes.allocatedBytes / $zstdBytes, 2)
            zstdCompressMs = Get-Stats $compressMs
            zstdDecompressMs = Get-Stats $decompressMs
            catMemoryMs    = Get-Stats $catMs
        }
        rounds        = $rounds
        warmup        = $warm
        hostLog       = $script:HostLogCopy
    }

    # The table.
    $mb = { param([long] $b) '{0:0.00} MB' -f ($b / 1MB) }
    $table = @(
        [pscustomobject]@{ Figure = 'Restore → pong, raw QEMU'; Value = (Format-Range $rawRestore 'ms' '0'); Target = '(baseline)'; Result = '' }
        [pscustomobject]@{ Figure = 'Restore → pong, module'; Value = (Format-Range $modRestore 'ms' '0'); Target = "≤ $RestoreRatioTarget × raw"; Result = ('{0:0.000}× {1}' -f $restoreRatio, (Format-Verdict $results.restore.pass)) }
        [pscustomobject]@{ Figure = '  (per-round ratio module/raw)'; Value = (Format-Range $restorePairs '×' '0.000'); Target = ''; Result = '' }
        [pscustomobject]@{ Figure = 'Cold boot → pong, module'; Value = (Format-Range $cold 'ms' '0'); Target = "restore ≥ $ColdBootSpeedupTarget× faster"; Result = ('{0:0.00}× {1}' -f $speedup, (Format-Verdict $results.coldBoot.pass)) }
        [pscustomobject]@{ Figure = 'Save, raw QMP (stop → cont)'; Value = (Format-Range $rawSave 'ms' '0'); Target = '(baseline)'; Result = '' }
        [pscustomobject]@{ Figure = 'Save-MacVm'; Value = (Format-Range $modSave 'ms' '0'); Target = "≤ $SaveRatioTarget × raw"; Result = ('{0:0.000}× {1}' -f $saveRatio, (Format-Verdict $results.save.pass)) }
        [pscustomobject]@{ Figure = '  (guest paused, module host)'; Value = $(if ($results.save.modulePausedMs.median) { Format-Range $results.save.modulePausedMs 'ms' '0' } else { 'n/a' }); Target = ''; Result = '' }
        [pscustomobject]@{ Figure = '  (cmdlet → host save returned)'; Value = $(if ($results.save.moduleHostReturnedMs.median) { Format-Range $results.save.moduleHostReturnedMs 'ms' '0' } else { 'n/a' }); Target = ''; Result = '' }
        [pscustomobject]@{ Figure = "$ParallelCount restores in parallel → all pong"; Value = (Format-Range $par 'ms' '0'); Target = "≤ $ParallelRatioTarget × one"; Result = ('{0:0.000}× {1}' -f $parRatio, (Format-Verdict $results.parallel.pass)) }
        [pscustomobject]@{ Figure = "  (raw: $ParallelCount in parallel, against one raw)"; Value = (Format-Range $rawPar 'ms' '0'); Target = ''; Result = ('{0:0.000}× one raw; module {1:0.00}× raw' -f $rawParRatio, $results.parallel.moduleOverRaw) }
        [pscustomobject]@{ Figure = 'Disk per clone (allocated)'; Value = ('{0:0} KB (max {1:0} KB)' -f $cloneStats.median, ($cloneMaxBytes / 1KB)); Target = '≤ 2 MB'; Result = (Format-Verdict $results.parallel.cloneDiskPass) }
        [pscustomobject]@{ Figure = 'Snapshot state.bin (devices)'; Value = ('{0} apparent, {1} allocated' -f (& $mb $stateBytes.apparentBytes), (& $mb $stateBytes.allocatedBytes)); Target = ''; Result = '' }
        [pscustomobject]@{ Figure = 'Snapshot memory.bin'; Value = ('{0} apparent, {1} allocated' -f (& $mb $memoryBytes.apparentBytes), (& $mb $memoryBytes.allocatedBytes)); Target = ''; Result = '' }
        [pscustomobject]@{ Figure = '  (plain QEMU state, memory inside)'; Value = ('{0}' -f (& $mb $rawStateBytes.apparentBytes)); Target = ''; Result = '' }
        [pscustomobject]@{ Figure = 'Snapshot disk.qcow2'; Value = ('{0} apparent, {1} allocated, {2} links' -f (& $mb $diskBytes.apparentBytes), (& $mb $diskBytes.allocatedBytes), $diskBytes.links); Target = ''; Result = '' }
        [pscustomobject]@{ Figure = 'memory.bin, zstd -1'; Value = ('{0} ({1:0.0}× its allocated size), compress {2:0} ms, decompress {3:0} ms (cat {4:0} ms)' -f (& $mb $zstdBytes), $results.snapshotSize.zstdRatio, $results.snapshotSize.zstdCompressMs.median, $results.snapshotSize.zstdDecompressMs.median, $results.snapshotSize.catMemoryMs.median); Target = ''; Result = '' }
        [pscustomobject]@{ Figure = 'Restore → pong, raw via zstd -dc'; Value = (Format-Range $rawZstd 'ms' '0'); Target = '(reference)'; Result = '' }
    )
    Write-Host ''
    $table | Format-Table -AutoSize -Wrap | Out-String -Width 220 | Write-Host
    Write-Host 'Module restore timeline (median ms since just before Restore-MacVmSnapshot; from host.log):'
    $phaseTable = foreach ($p in $modulePhases.Keys) { [pscustomobject]@{ Event = $p; 'Median ms' = $modulePhases[$p].median; 'Min' = $modulePhases[$p].min; 'Max' = $modulePhases[$p].max } }
    $phaseTable | Sort-Object 'Median ms' | Format-Table -AutoSize | Out-String -Width 200 | Write-Host
    Write-Host 'Step durations, median ms (module | raw):'
    Write-Host ('  before the host / QEMU:  cmdlet → host started {0:0} (checksums of the snapshot {1:0}, skipped while stamped; qemu-img {2:0}, bare host exe start {3:0}, fsync''d small write {4:0.0}); host started → QEMU started {5:0}  |  qemu-img {6:0}, spawn {7:0}' -f
        $moduleSteps.cmdletToHostStarted, $sha.median, $rawPhases.overlayMs.median, $results.restore.hostExeHelpMs.median, $results.restore.fsyncSmallWriteMs.median, $moduleSteps.hostStartedToQemu, $rawSteps.overlay, $rawSteps.spawn)
    Write-Host ('  QEMU → QMP connected:    {0:0}  |  {1:0}' -f $moduleSteps.qemuToQmpConnected, $rawSteps.spawnToQmp)
    Write-Host ('  QMP → state loaded:      {0:0}  |  {1:0}' -f $moduleSteps.qmpToStateLoaded, $rawSteps.qmpToStateLoaded)
    Write-Host ('  state loaded → pong:     {0:0} (→ cmdlet returned {1:0}, → pong {2:0})  |  {3:0}' -f
        ($moduleSteps.stateLoadedToReturned + $moduleSteps.returnedToPong), $moduleSteps.stateLoadedToReturned, $moduleSteps.returnedToPong, $rawSteps.loadedToPong)
    $cpu = $results.restore.cpuMedianMs
    Write-Host ('CPU up to the pong (median ms): raw QEMU {0:0}; module QEMU {1:0}, MacVm.Host {2:0}.' -f $cpu.rawQemu, $cpu.moduleQemu, $cpu.moduleHost)
    if (-not $argumentsMatch) { Write-Warning "A cold-booted VM's QEMU arguments are not the restored VM's minus '-incoming defer'." }
    Write-Host "Load average $loadBefore at the start, $loadAfter at the end."

    $results | ConvertTo-Json -Depth 10 | Set-Content -Path $OutFile
    Write-Host "Figures written to $OutFile (host.log of the last module restore: $script:HostLogCopy)"
}
catch {
    Write-Host "Benchmark failed: $_"
    Write-Host $_.ScriptStackTrace
    $exitCode = 1
}
finally {
    if ($script:Store) {
        $env:MACVM_HOME = $script:Store
        if ($rawSaver) {
            try { $rawSaver.Agent.Dispose(); $rawSaver.Qmp.Socket.Dispose() } catch { }
        }
        Remove-ScratchVm -Snapshots
        $leftovers = @(Stop-ScratchProcess -Store $script:Store -Tracker $script:RawProcesses -ProcessName $ScratchProcessNames)
        if ($leftovers.Count -gt 0) { $exitCode = 1 }
        Remove-Item -Recurse -Force $script:Store -ErrorAction Ignore
        if (Test-Path $script:Store) { Write-Host "Could not remove the scratch store $script:Store."; $exitCode = 1 }
    }
}
exit $exitCode
