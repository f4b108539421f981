#Requires -Version 7.4
<#
.SYNOPSIS
    The foundation benchmarks of MacVm: cold boot to a guest answer (module against raw QEMU),
    Import-Module cost, and the host process's memory.
.DESCRIPTION
    One run measures, interleaving raw and module boots (raw, module, raw, module, ...) so that
    machine noise hits both alike:

      1. Cold boot to guest answers.
         Module: New-MacVm -Accelerator Tcg, then Test-MacVmGuest retried until the first pong;
         timed from just before New-MacVm to the pong; then Remove-MacVm -Force.
         Raw: the same guest without the module: qemu-img makes a qcow2 overlay on the guest's
         disk.qcow2, qemu-system-x86_64 is spawned with the arguments the module uses, the agent
         socket is connected (retried until it exists) and 'ping N' lines go out every ~50 ms until
         a 'pong N' comes back; timed from the spawn to that pong; then QEMU is killed.
         Figure: median module / median raw (target <= 1.10).
      2. Import-Module cost: median of 'pwsh -c "Import-Module <psd1>"' minus median of
         'pwsh -c 1' over -Runs runs each, interleaved (target <= 300 ms).
      3. Host RSS without QEMU: VmRSS of the module VM's MacVm.Host process (HostProcessId) once
         its guest answered, median over the module runs (target <= 50 MB).

    One untimed warm-up pair (raw + module) runs first: it takes the first-call JIT of the cmdlets
    in this session and cold page-cache reads out of the medians; its figures are in the JSON.
    The module's phases (host start, QEMU start, QMP, agent port open, agent answer, New-MacVm's
    return, the pong) are read from each VM's host.log and reported as medians; the host.log of
    the last module run is kept beside the JSON file (<name>-host.log). Also recorded: the CPU time
    of QEMU, the host and this pwsh up to the pong (two cores: the module's CPU competes with the
    guest), the host's PSS beside its RSS (RSS counts the shared .NET framework pages), the number
    of other QEMU processes on the machine at the start of each boot (noise), and whether the raw
    QEMU arguments still equal the module's (a warning when QemuCommandLine.cs has moved on).

    Everything runs in a scratch store /tmp/macvm-bench-XXXX (unix socket paths are limited to 108
    bytes), removed at the end together with every VM and every QEMU this script started.
    Exit code: 0 when every figure was measured (missed targets are reported, not failures);
    1 when a measurement could not be made, or when VM processes were left over and had to be killed.
.EXAMPLE
    pwsh -NoProfile -File tests/Benchmarks/Invoke-Benchmarks.ps1 -ModulePath out/MacVm/MacVm.psd1 -GuestDir out/guest
#>
[CmdletBinding()]
param(
    # The module manifest (out/MacVm/MacVm.psd1).
    [Parameter(Mandatory)] [string] $ModulePath,
    # The test guest's folder (output of tests/guest/build.sh, with guest.json).
    [Parameter(Mandatory)] [string] $GuestDir,
    # Timed runs of each measurement (boots: this many raw and this many module boots).
    [ValidateRange(1, 100)] [int] $Runs = 5,
    # Where the figures go as JSON.
    [string] $OutFile = (Join-Path (Split-Path -Parent (Split-Path -Parent $PSScriptRoot)) 'out/bench/foundation.json')
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
$ProgressPreference = 'SilentlyContinue'

$ColdBootRatioTarget = 1.10
$ImportCostTargetMs = 300
$HostRssTargetMB = 50
$BootTimeoutSec = 90
$PingIntervalMs = 50
$Pwsh = Join-Path $PSHOME 'pwsh'

Import-Module (Join-Path $PSScriptRoot 'BenchmarkSupport.psm1') -Force

# The events of host.log that a cold boot's timeline reports (Read-HostLogTimeline).
$HostLogEvents = [ordered]@{
    hostStarted        = '^MacVm\.Host '
    qemuStarted        = '^QEMU started'
    qmpConnected       = '^QMP connected'
    agentPortOpened    = '^QMP event VSERPORT_CHANGE .*"open":\s*true'
    firstConsoleOutput = '^First console output'
    readyMarker        = '^Guest ready marker seen'
    agentAnswered      = '^Guest agent answered'
}

#region helpers (the others are in BenchmarkSupport.psm1)

function Get-ProcStatusKB {
    <# A numeric field of /proc/<pid>/status (VmRSS and VmHWM are in KiB), or $null. #>
    param([int] $ProcessId, [string] $Field)
    $line = Get-Content "/proc/$ProcessId/status" -ErrorAction Ignore | Where-Object { $_ -like "${Field}:*" } | Select-Object -First 1
    if ($line -match ':\s*(\d+)') { [long]$Matches[1] } else { $null }
}

function Get-SelfCpuMs { [Diagnostics.Process]::GetCurrentProcess().TotalProcessorTime.TotalMilliseconds }

function Get-RawMemoryFile {
    <# Where a raw VM's memory file lives (in /dev/shm, like the module's; removed with the raw VM). #>
    param([string] $Dir)
    "/dev/shm/$(Split-Path -Leaf (Split-Path -Parent $Dir))-$(Split-Path -Leaf $Dir).mem"
}

function Get-RawQemuArguments {
    <#
    The arguments MacVm's QEMU driver gives QEMU (src/MacVm.Engine/Drivers/Qemu/QemuCommandLine.cs)
    for a 1-CPU, 256 MiB TCG VM of a kernel image with a disk, the guest agent and IP ports, and its
    network card with NAT behind a hub.
    #>
    param([string] $Dir, [string] $Overlay)
    @(
        '-name', 'macvm-raw,debug-threads=on'
        '-machine', 'pc-i440fx-7.2,accel=tcg,memory-backend=ram0'
        # The guest's memory in a shared file in /dev/shm, as the module keeps it (its host copies it at a save).
        '-object', "memory-backend-file,id=ram0,size=256M,mem-path=$(Get-RawMemoryFile $Dir),share=on"
        '-m', '256', '-smp', '1'
        '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot'
        '-qmp', "unix:$Dir/qmp.sock,server=on,wait=off"
        '-chardev', "socket,id=serial0,path=$Dir/serial.sock,server=on,wait=off"
        '-serial', 'chardev:serial0'
        '-device', 'virtio-serial-pci,id=vser0'
        '-chardev', "socket,id=agent0,path=$Dir/agent.sock,server=on,wait=off"
        '-device', 'virtserialport,id=agentport,bus=vser0.0,chardev=agent0,name=org.macvm.agent'
        '-chardev', "socket,id=ip0,path=$Dir/ip.sock,server=on,wait=off"
        '-device', 'virtserialport,id=ipport,bus=vser0.0,chardev=ip0,name=org.macvm.ip'
        '-device', 'VGA,id=vga0'
        # The NIC on a datagram socket nobody serves (an unplugged VM's frames go nowhere either), and
        # the NAT that every VM carries so that its saved state matches any attachment.
        '-netdev', "dgram,id=net0,local.type=unix,local.path=$Dir/nic-q.sock,remote.type=unix,remote.path=$Dir/nic-h.sock"
        '-device', 'virtio-net-pci,id=nic0,netdev=net0,mac=02:00:00:00:00:01,romfile='
        '-netdev', 'user,id=nat0'
        '-netdev', 'hubport,id=natport0,hubid=0,netdev=nat0'
        '-netdev', "dgram,id=natlink0,local.type=unix,local.path=$Dir/nat-q.sock,remote.type=unix,remote.path=$Dir/nat-h.sock"
        '-netdev', 'hubport,id=natport1,hubid=0,netdev=natlink0'
        '-blockdev', "driver=file,node-name=file0,filename=$($Overlay.Replace(',', ',,'))"
        '-blockdev', 'driver=qcow2,node-name=disk0,file=file0'
        '-device', 'virtio-blk-pci,id=blk0,drive=disk0'
        '-kernel', $script:Guest.Kernel
        '-initrd', $script:Guest.Initrd
        '-append', $script:Guest.CommandLine
    )
}

#endregion

#region measurements

function Invoke-RawBoot {
    <# One cold boot without the module; returns its timings (ms since the spawn of QEMU). #>
    param([string] $Label)
    $dir = Join-Path $script:Store "raw-$Label"
    $null = New-Item -ItemType Directory -Path $dir
    $overlay = Join-Path $dir 'disk.qcow2'
    $sw = [Diagnostics.Stopwatch]::StartNew()
    Invoke-Native $script:QemuImg @('create', '-q', '-f', 'qcow2', '-b', $script:Guest.Disk, '-F', 'qcow2', $overlay)
    $overlayMs = $sw.Elapsed.TotalMilliseconds

    $arguments = Get-RawQemuArguments -Dir $dir -Overlay $overlay
    $script:RawArguments = ConvertTo-ComparableArguments $arguments $dir
    $agentPath = Join-Path $dir 'agent.sock'

    $selfCpu = Get-SelfCpuMs
    $sw = [Diagnostics.Stopwatch]::StartNew()
    $raw = Start-RawQemu -Qemu $script:Qemu -Arguments $arguments -Tracker $script:RawProcesses
    $spawnMs = $sw.Elapsed.TotalMilliseconds
    $socket = $null
    try {
        # Connect to the agent socket as soon as QEMU has made it.
        $socket = Connect-UnixSocket -Path $agentPath -Raw $raw -TimeoutSec $BootTimeoutSec
        $connectedMs = $sw.Elapsed.TotalMilliseconds

        # 'ping N' every ~50 ms (they queue in QEMU until the guest opens its port) until a pong.
        $pong = Wait-AgentPong -Socket $socket -Raw $raw -TimeoutSec $BootTimeoutSec -PingIntervalMs $PingIntervalMs
        $pongMs = $sw.Elapsed.TotalMilliseconds
        $sent = $pong.Sent
        $pongToken = $pong.Token
    }
    finally {
        $selfCpu = (Get-SelfCpuMs) - $selfCpu
        $qemuCpu = Get-ProcCpuMs $raw.Process.Id
        if ($socket) { $socket.Dispose() }
        Stop-RawQemu $raw -Tracker $script:RawProcesses
        Remove-Item -Recurse -Force $dir -ErrorAction Ignore
        Remove-Item -Force (Get-RawMemoryFile $dir) -ErrorAction Ignore
    }
    [ordered]@{
        overlayMs   = [math]::Round($overlayMs, 1)
        spawnMs     = [math]::Round($spawnMs, 1)
        connectedMs = [math]::Round($connectedMs, 1)
        pongMs      = [math]::Round($pongMs, 1)
        pingsSent   = $sent
        pongToken   = $pongToken
        benchCpuMs  = [math]::Round($selfCpu, 0)
        qemuCpuMs   = $qemuCpu
    }
}

function Invoke-ModuleBoot {
    <# One cold boot through the module; returns its timings (ms since just before New-MacVm) and the host's memory. #>
    param([string] $Name, [switch] $KeepHostLog)
    $vm = $null
    try {
        $selfCpu = Get-SelfCpuMs
        $startUtc = [DateTimeOffset]::UtcNow
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $vm = New-MacVm -Name $Name -Image tiny -Accelerator Tcg -ErrorAction Stop
        $newMs = $sw.Elapsed.TotalMilliseconds
        $pong = Wait-ModulePong -Name $Name -Clock $sw -TimeoutSec $BootTimeoutSec
        $ping = $pong.Ping
        $attempts = $pong.Attempts
        $pongMs = $pong.AtMs
        $selfCpu = (Get-SelfCpuMs) - $selfCpu

        $hostPid = $vm.HostProcessId
        $hostCpu = Get-ProcCpuMs $hostPid
        $qemuCpu = if ($vm.HypervisorProcessId) { Get-ProcCpuMs $vm.HypervisorProcessId } else { $null }
        if (-not $hostPid) { throw "New-MacVm returned no HostProcessId for VM '$Name'." }
        $rssKB = Get-ProcStatusKB $hostPid 'VmRSS'
        $hwmKB = Get-ProcStatusKB $hostPid 'VmHWM'
        $pssLine = Get-Content "/proc/$hostPid/smaps_rollup" -ErrorAction Ignore | Where-Object { $_ -like 'Pss:*' } | Select-Object -First 1
        $pssKB = if ($pssLine -match '(\d+)') { [long]$Matches[1] } else { $null }
        $threads = Get-ProcStatusKB $hostPid 'Threads'
        if ($null -eq $rssKB) { throw "Could not read VmRSS of the host process $hostPid of VM '$Name'." }
        $qemuRssKB = if ($vm.HypervisorProcessId) { Get-ProcStatusKB $vm.HypervisorProcessId 'VmRSS' } else { $null }
        if (-not $script:ModuleArguments -and $vm.HypervisorProcessId) {
            $cmd = @(Get-ProcessCommandLine $vm.HypervisorProcessId)
            if ($cmd.Count -gt 1) { $script:ModuleArguments = ConvertTo-ComparableArguments $cmd[1..($cmd.Count - 1)] $vm.Path }
        }

        $timeline = Read-HostLogTimeline -Path (Join-Path $vm.Path 'host.log') -Start $startUtc -Events $HostLogEvents
        $timeline['newMacVmReturned'] = [math]::Round($newMs, 1)
        $timeline['pong'] = [math]::Round($pongMs, 1)
        if ($KeepHostLog) { Copy-Item (Join-Path $vm.Path 'host.log') $script:HostLogCopy -Force }

        $removeMs = Measure-VmRemoval -Name $Name
        $vm = $null
        [ordered]@{
            pongMs        = [math]::Round($pongMs, 1)
            newMacVmMs    = [math]::Round($newMs, 1)
            pingAttempts  = $attempts
            pingRttMs     = [math]::Round($ping.RoundTripMs, 2)
            removeMs      = [math]::Round($removeMs, 1)
            hostRssKB     = $rssKB
            hostHwmKB     = $hwmKB
            hostPssKB     = $pssKB
            hostThreads   = $threads
            qemuRssKB     = $qemuRssKB
            # CPU used up to the pong: this pwsh (cmdlets), the host, QEMU. Two cores: it all competes with the guest.
            benchCpuMs    = [math]::Round($selfCpu, 0)
            hostCpuMs     = $hostCpu
            qemuCpuMs     = $qemuCpu
            timeline      = $timeline
        }
    }
    finally {
        if ($vm) { Remove-MacVm -Name $Name -Force -Confirm:$false -ErrorAction Ignore }
    }
}

function Measure-Pwsh {
    <# Wall time of one child pwsh running $Command. #>
    param([string] $Command)
    $sw = [Diagnostics.Stopwatch]::StartNew()
    $output = & $Pwsh -NoProfile -NonInteractive -Command $Command 2>&1
    $ms = $sw.Elapsed.TotalMilliseconds
    if ($LASTEXITCODE -ne 0) { throw "'pwsh -c $Command' failed with exit code ${LASTEXITCODE}: $output" }
    $ms
}

#endregion

$exitCode = 0
$script:Store = $null
$script:RawProcesses = [Collections.Generic.List[Diagnostics.Process]]::new()
$script:RawArguments = $null
$script:ModuleArguments = $null
$leftovers = @()
$results = $null
try {
    $ModulePath = (Resolve-Path $ModulePath).Path
    $GuestDir = (Resolve-Path $GuestDir).Path
    $OutFile = [IO.Path]::GetFullPath($OutFile)
    $script:HostLogCopy = [IO.Path]::ChangeExtension($OutFile, $null).TrimEnd('.') + '-host.log'
    $null = New-Item -ItemType Directory -Force -Path (Split-Path -Parent $OutFile)
    $meta = Get-Content -Raw (Join-Path $GuestDir 'guest.json') | ConvertFrom-Json
    $script:Guest = Get-TestGuest -GuestDir $GuestDir -Meta $meta
    $script:Qemu = (Get-Command qemu-system-x86_64 -CommandType Application).Source | Select-Object -First 1
    $script:QemuImg = (Get-Command qemu-img -CommandType Application).Source | Select-Object -First 1

    $script:Store = New-ScratchStore
    $env:MACVM_HOME = $script:Store
    Import-Module $ModulePath -Force
    $module = Get-Module MacVm
    $null = Import-MacVmImage -Name tiny -Kernel $script:Guest.Kernel -Initrd $script:Guest.Initrd -Disk $script:Guest.Disk `
        -KernelCommandLine $script:Guest.CommandLine -GuestAgent -ReadyMarker 'MACVM-GUEST-READY'

    $loadBefore = Get-LoadAverage
    Write-Host "MacVm benchmarks: $Runs runs, module $($module.Version) from $ModulePath, store $script:Store"
    Write-Host "  $([Environment]::ProcessorCount) CPUs, load average $loadBefore; $((& $script:Qemu --version | Select-Object -First 1))"

    # 2. Import-Module cost (first: quick, and it fails early when the module does not load).
    Write-Host '== Import-Module cost'
    $importCommand = "Import-Module '$($ModulePath.Replace("'", "''"))'"
    $null = Measure-Pwsh '1'
    $null = Measure-Pwsh $importCommand
    $bare = [Collections.Generic.List[double]]::new()
    $imports = [Collections.Generic.List[double]]::new()
    for ($i = 1; $i -le $Runs; $i++) {
        $bare.Add((Measure-Pwsh '1'))
        $imports.Add((Measure-Pwsh $importCommand))
        Write-Host ('  run {0}: pwsh -c 1 {1,6:0} ms, pwsh -c Import-Module {2,6:0} ms' -f $i, $bare[-1], $imports[-1])
    }

    # 1. and 3. Cold boots, interleaved, after one warm-up pair.
    Write-Host '== Cold boot to guest answer (raw QEMU, then module, alternately)'
    $warmRaw = Invoke-RawBoot -Label 'warmup'
    $warmModule = Invoke-ModuleBoot -Name 'bwarm'
    Write-Host ('  warm-up: raw {0,6:0} ms, module {1,6:0} ms (not counted)' -f $warmRaw.pongMs, $warmModule.pongMs)
    $rawRuns = [Collections.Generic.List[object]]::new()
    $moduleRuns = [Collections.Generic.List[object]]::new()
    for ($i = 1; $i -le $Runs; $i++) {
        $foreign = Get-ForeignVmCount -Store $script:Store
        $rawRuns.Add((Invoke-RawBoot -Label "$i"))
        $rawRuns[-1]['foreignQemuAtStart'] = $foreign
        $foreign = Get-ForeignVmCount -Store $script:Store
        $moduleRuns.Add((Invoke-ModuleBoot -Name "b$i" -KeepHostLog:($i -eq $Runs)))
        $moduleRuns[-1]['foreignQemuAtStart'] = $foreign
        if ($rawRuns[-1].foreignQemuAtStart + $foreign -gt 0) {
            Write-Host "  (other QEMU processes were running on this machine: raw run $($rawRuns[-1].foreignQemuAtStart), module run $foreign)"
        }
        Write-Host ('  run {0}: raw {1,6:0} ms, module {2,6:0} ms (New-MacVm returned at {3:0} ms), host RSS {4:0.0} MB' -f
            $i, $rawRuns[-1].pongMs, $moduleRuns[-1].pongMs, $moduleRuns[-1].newMacVmMs, ($moduleRuns[-1].hostRssKB / 1024))
    }
    $loadAfter = Get-LoadAverage

    # Figures.
    $raw = Get-Stats @($rawRuns | ForEach-Object { $_.pongMs })
    $mod = Get-Stats @($moduleRuns | ForEach-Object { $_.pongMs })
    $ratio = [math]::Round($mod.median / $raw.median, 3)
    $pairRatios = Get-Stats @(for ($i = 0; $i -lt $Runs; $i++) { $moduleRuns[$i].pongMs / $rawRuns[$i].pongMs }) -Digits 3
    $bareStats = Get-Stats $bare
    $importStats = Get-Stats $imports
    $importCost = [math]::Round($importStats.median - $bareStats.median, 1)
    $rss = Get-Stats @($moduleRuns | ForEach-Object { $_.hostRssKB / 1024 })
    $hwm = Get-Stats @($moduleRuns | ForEach-Object { $_.hostHwmKB / 1024 })
    $phaseNames = @('hostStarted', 'qemuStarted', 'qmpConnected', 'agentPortOpened', 'agentAnswered', 'firstConsoleOutput', 'readyMarker', 'newMacVmReturned', 'pong')
    $phases = [ordered]@{}
    foreach ($p in $phaseNames) {
        $values = @($moduleRuns | Where-Object { $_.timeline.Contains($p) } | ForEach-Object { $_.timeline[$p] })
        if ($values.Count) { $phases[$p] = (Get-Stats $values).median }
    }
    $rawPhases = [ordered]@{
        overlayMs   = (Get-Stats @($rawRuns | ForEach-Object { $_.overlayMs })).median
        spawnMs     = (Get-Stats @($rawRuns | ForEach-Object { $_.spawnMs })).median
        connectedMs = (Get-Stats @($rawRuns | ForEach-Object { $_.connectedMs })).median
        pongMs      = $raw.median
    }
    $argumentsMatch = $null
    if ($script:RawArguments -and $script:ModuleArguments) {
        $argumentsMatch = ($script:RawArguments -join "`n") -ceq ($script:ModuleArguments -join "`n")
    }

    $results = [ordered]@{
        schemaVersion = 1
        benchmark     = 'foundation'
        timestampUtc  = [DateTimeOffset]::UtcNow.ToString('o')
        runs          = $Runs
        machine       = Get-MachineInfo -LoadAverageStart $loadBefore -LoadAverageEnd $loadAfter -Qemu $script:Qemu
        module        = [ordered]@{ path = $ModulePath; version = "$($module.Version)" }
        guest         = [ordered]@{ dir = $GuestDir; kernelRelease = $meta.kernelRelease; cmdline = $meta.cmdline }
        coldBoot      = [ordered]@{
            rawMs                 = $raw
            moduleMs              = $mod
            ratio                 = $ratio
            pairRatios            = $pairRatios
            target                = $ColdBootRatioTarget
            pass                  = $ratio -le $ColdBootRatioTarget
            qemuArgumentsMatch    = $argumentsMatch
            rawPhasesMedianMs     = $rawPhases
            modulePhasesMedianMs  = $phases
            # Where the module spends time the raw script does not: before QEMU runs, and after the agent first answered.
            moduleBeforeQemuMs    = Get-Stats @($moduleRuns | Where-Object { $_.timeline.Contains('qemuStarted') } | ForEach-Object { $_.timeline.qemuStarted })
            # The guest's own boot under the module (QEMU spawned → guest opened the agent port), to set against the raw figure.
            moduleQemuToPortOpenMs = Get-Stats @($moduleRuns | Where-Object { $_.timeline.Contains('agentPortOpened') -and $_.timeline.Contains('qemuStarted') } | ForEach-Object { $_.timeline.agentPortOpened - $_.timeline.qemuStarted })
            moduleAgentToPongMs   = Get-Stats @($moduleRuns | Where-Object { $_.timeline.Contains('agentAnswered') } | ForEach-Object { $_.timeline.pong - $_.timeline.agentAnswered })
            moduleNewMacVmMs      = Get-Stats @($moduleRuns | ForEach-Object { $_.newMacVmMs })
            moduleRemoveMs        = Get-Stats @($moduleRuns | ForEach-Object { $_.removeMs })
            cpuMedianMs           = [ordered]@{
                rawBenchPwsh    = (Get-Stats @($rawRuns | ForEach-Object { $_.benchCpuMs })).median
                rawQemu         = (Get-Stats @($rawRuns | ForEach-Object { $_.qemuCpuMs })).median
                moduleBenchPwsh = (Get-Stats @($moduleRuns | ForEach-Object { $_.benchCpuMs })).median
                moduleHost      = (Get-Stats @($moduleRuns | ForEach-Object { $_.hostCpuMs })).median
                moduleQemu      = (Get-Stats @($moduleRuns | ForEach-Object { $_.qemuCpuMs })).median
            }
            rawRuns               = $rawRuns
            moduleRuns            = $moduleRuns
            warmup                = [ordered]@{ raw = $warmRaw; module = $warmModule }
        }
        importModule  = [ordered]@{
            importMs  = $importStats
            bareMs    = $bareStats
            costMs    = $importCost
            targetMs  = $ImportCostTargetMs
            pass      = $importCost -le $ImportCostTargetMs
        }
        hostRss       = [ordered]@{
            rssMB    = $rss
            hwmMB    = $hwm
            # Proportional set size: shared framework pages divided among the processes mapping them.
            pssMB    = Get-Stats @($moduleRuns | Where-Object { $_.hostPssKB } | ForEach-Object { $_.hostPssKB / 1024 })
            targetMB = $HostRssTargetMB
            pass     = $rss.median -le $HostRssTargetMB
        }
        hostLog       = $script:HostLogCopy
    }

    # The table.
    $table = @(
        [pscustomobject]@{ Figure = 'Cold boot → pong, raw QEMU'; Value = (Format-Range $raw 'ms' '0'); Target = '(baseline)'; Result = '' }
        [pscustomobject]@{ Figure = 'Cold boot → pong, module'; Value = (Format-Range $mod 'ms' '0'); Target = "≤ $ColdBootRatioTarget × raw"; Result = ('{0:0.000}× {1}' -f $ratio, (Format-Verdict $results.coldBoot.pass)) }
        [pscustomobject]@{ Figure = '  (per-pair ratio module/raw)'; Value = (Format-Range $pairRatios '×' '0.000'); Target = ''; Result = '' }
        [pscustomobject]@{ Figure = 'Import-Module cost'; Value = ('{0:0} ms (import {1:0} − bare pwsh {2:0})' -f $importCost, $importStats.median, $bareStats.median); Target = "≤ $ImportCostTargetMs ms"; Result = (Format-Verdict $results.importModule.pass) }
        [pscustomobject]@{ Figure = 'Host RSS without QEMU'; Value = (Format-Range $rss 'MB' '0.0'); Target = "≤ $HostRssTargetMB MB"; Result = (Format-Verdict $results.hostRss.pass) }
        [pscustomobject]@{ Figure = '  (host PSS, for reference)'; Value = $(if ($results.hostRss.pssMB.median) { Format-Range $results.hostRss.pssMB 'MB' '0.0' } else { 'n/a' }); Target = ''; Result = '' }
    )
    Write-Host ''
    $table | Format-Table -AutoSize -Wrap | Out-String -Width 200 | Write-Host
    Write-Host 'Module boot timeline (median ms since just before New-MacVm; raw: since the spawn of QEMU):'
    $phaseTable = foreach ($p in $phases.Keys) { [pscustomobject]@{ Phase = $p; 'Median ms' = $phases[$p] } }
    $phaseTable | Sort-Object 'Median ms' | Format-Table -AutoSize | Out-String -Width 200 | Write-Host
    Write-Host ('Module-only time: {0:0} ms before QEMU was spawned, {1:0} ms from the agent''s first answer (to the host) to the pong (medians).' -f
        $results.coldBoot.moduleBeforeQemuMs.median, $results.coldBoot.moduleAgentToPongMs.median)
    Write-Host ('Guest boot under the module: {0:0} ms from the spawn of QEMU to the agent port opening (median; raw spawn → pong: {1:0} ms).' -f
        $results.coldBoot.moduleQemuToPortOpenMs.median, $raw.median)
    $cpu = $results.coldBoot.cpuMedianMs
    Write-Host ('CPU up to the pong (median ms): raw run: QEMU {0:0}, this pwsh {1:0}; module run: QEMU {2:0}, MacVm.Host {3:0}, this pwsh (cmdlets) {4:0}.' -f
        $cpu.rawQemu, $cpu.rawBenchPwsh, $cpu.moduleQemu, $cpu.moduleHost, $cpu.moduleBenchPwsh)
    Write-Host ('Raw: qemu-img overlay {0:0} ms (before the clock starts), agent socket connected at {1:0} ms, pong at {2:0} ms.' -f $rawPhases.overlayMs, $rawPhases.connectedMs, $rawPhases.pongMs)
    if ($argumentsMatch -eq $false) {
        Write-Warning "The raw QEMU arguments differ from the module's: update Get-RawQemuArguments.`n raw:    $($script:RawArguments -join ' ')`n module: $($script:ModuleArguments -join ' ')"
    }
    Write-Host "Load average $loadBefore at the start, $loadAfter at the end."

    $results | ConvertTo-Json -Depth 8 | Set-Content -Path $OutFile
    Write-Host "Figures written to $OutFile (host.log of the last module VM: $script:HostLogCopy)"
}
catch {
    Write-Host "Benchmark failed: $_"
    Write-Host $_.ScriptStackTrace
    $exitCode = 1
}
finally {
    if ($script:Store) {
        $env:MACVM_HOME = $script:Store
        Remove-ScratchVm
        $leftovers = @(Stop-ScratchProcess -Store $script:Store -Tracker $script:RawProcesses)
        if ($leftovers.Count -gt 0) { $exitCode = 1 }
        Remove-Item -Recurse -Force $script:Store -ErrorAction Ignore
    }
}
exit $exitCode
