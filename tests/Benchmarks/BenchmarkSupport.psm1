#Requires -Version 7.4
<#
.SYNOPSIS
    Helpers shared by the MacVm benchmarks (Invoke-Benchmarks.ps1, Invoke-SnapshotBenchmarks.ps1):
    statistics, /proc readings, raw QEMU processes and their unix sockets, the guest agent's ping,
    host.log timelines, clean-up of the scratch store's processes and the result table's cells.
#>

# As in the benchmark scripts: every error stops (the module's functions do not see the scripts' preference).
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

# Clock ticks per second, for the CPU times in /proc/<pid>/stat.
$script:ClockTicks = [int](& getconf CLK_TCK)

# The scratch store's process names that the final clean-up looks for (the foundation benchmark's set).
$script:DefaultScratchProcessNames = @('qemu-system-x86_64', 'qemu-system-aarch64', 'MacVm.Host', 'setpriv', 'sh')

#region statistics and /proc

function Get-Stats {
    <# Median, min and max of a list of numbers (rounded to -Digits decimals). #>
    param([double[]] $Values, [int] $Digits = 1)
    $sorted = @($Values | Sort-Object)
    $n = $sorted.Count
    if ($n -eq 0) { return [ordered]@{ median = $null; min = $null; max = $null; samples = @() } }
    $median = if ($n % 2) { $sorted[($n - 1) / 2] } else { ($sorted[$n / 2 - 1] + $sorted[$n / 2]) / 2 }
    [ordered]@{
        median  = [math]::Round($median, $Digits)
        min     = [math]::Round($sorted[0], $Digits)
        max     = [math]::Round($sorted[-1], $Digits)
        samples = @($Values | ForEach-Object { [math]::Round($_, $Digits) })
    }
}

function Get-ProcCpuMs {
    <# User + system CPU time of a process so far (ms, from /proc/<pid>/stat), or $null. #>
    param([int] $ProcessId)
    $stat = Get-Content -Raw "/proc/$ProcessId/stat" -ErrorAction Ignore
    if (-not $stat) { return $null }
    $fields = $stat.Substring($stat.LastIndexOf(')') + 2).Split(' ')
    ([long]$fields[11] + [long]$fields[12]) * 1000.0 / $script:ClockTicks
}

function Get-ProcessCommandLine {
    <# The command line of a process (from /proc/<pid>/cmdline) as an array, empty when it is gone. #>
    param([int] $ProcessId)
    $raw = Get-Content -Raw "/proc/$ProcessId/cmdline" -ErrorAction Ignore
    if ($raw) { @($raw.TrimEnd("`0").Split("`0")) } else { @() }
}

function Get-ScratchProcess {
    <# Processes named -ProcessName (qemu-system, MacVm.Host, setpriv, sh by default) whose command line names the scratch store. #>
    param([string] $Store, [string[]] $ProcessName = $script:DefaultScratchProcessNames)
    Get-Process | Where-Object {
        $_.ProcessName -in $ProcessName -and
        ((Get-ProcessCommandLine $_.Id) -join ' ') -like "*$Store*"
    }
}

function Get-ForeignVmCount {
    <# QEMU processes on the machine that are not this benchmark's (not naming -Store: other users' VMs, test suites): noise. #>
    param([string] $Store)
    @(Get-Process -Name 'qemu-system-*' -ErrorAction Ignore | Where-Object {
        ((Get-ProcessCommandLine $_.Id) -join ' ') -notlike "*$Store*"
    }).Count
}

function Invoke-Native {
    <# Runs a native command and throws with its output when it exits non-zero. #>
    param([string] $Command, [string[]] $Arguments)
    $output = & $Command @Arguments 2>&1
    if ($LASTEXITCODE -ne 0) { throw "'$Command $($Arguments -join ' ')' failed with exit code ${LASTEXITCODE}: $output" }
}

#endregion

#region raw QEMU: process, unix sockets, agent

function Start-RawQemu {
    <# Spawns QEMU (-Qemu) with $Arguments; the process is added to -Tracker for the final clean-up. #>
    param([string] $Qemu, [string[]] $Arguments, [Collections.Generic.List[Diagnostics.Process]] $Tracker)
    $psi = [Diagnostics.ProcessStartInfo]::new($Qemu)
    $psi.UseShellExecute = $false
    $psi.RedirectStandardInput = $true
    $psi.RedirectStandardOutput = $true
    $psi.RedirectStandardError = $true
    foreach ($a in $Arguments) { $psi.ArgumentList.Add($a) }
    $process = [Diagnostics.Process]::Start($psi)
    $Tracker.Add($process)
    [pscustomobject]@{
        Process = $process
        Stderr  = $process.StandardError.ReadToEndAsync()
        Stdout  = $process.StandardOutput.ReadToEndAsync()
    }
}

function Stop-RawQemu {
    <# Kills a raw QEMU started by Start-RawQemu (if it still runs), waits for it and drops it from -Tracker. #>
    param($Raw, [Collections.Generic.List[Diagnostics.Process]] $Tracker)
    if (-not $Raw) { return }
    $p = $Raw.Process
    try { if (-not $p.HasExited) { $p.Kill() } } catch [InvalidOperationException] { }
    $null = $p.WaitForExit(10000)
    $null = $Tracker.Remove($p)
    $p.Dispose()
}

function Get-RawExitText {
    <# 'QEMU exited with code N: <stderr>' for a raw QEMU that has exited. #>
    param($Raw)
    $p = $Raw.Process
    $err = if ($Raw.Stderr.IsCompleted) { $Raw.Stderr.Result.Trim() } else { '' }
    "QEMU exited with code $($p.ExitCode): $err"
}

function Connect-UnixSocket {
    <# Connects to a unix socket that QEMU is about to create, retrying every 5 ms (up to -TimeoutSec, the benchmarks' 90 s boot timeout). #>
    param([string] $Path, $Raw, [double] $TimeoutSec = 90)
    $sw = [Diagnostics.Stopwatch]::StartNew()
    while ($true) {
        if ($Raw.Process.HasExited) { throw "$(Get-RawExitText $Raw) (before '$Path' accepted connections)" }
        if ($sw.Elapsed.TotalSeconds -gt $TimeoutSec) { throw "'$Path' accepted no connection within $TimeoutSec s." }
        $s = [Net.Sockets.Socket]::new([Net.Sockets.AddressFamily]::Unix, [Net.Sockets.SocketType]::Stream, [Net.Sockets.ProtocolType]::Unspecified)
        try {
            $s.Connect([Net.Sockets.UnixDomainSocketEndPoint]::new($Path))
            return $s
        }
        catch [Net.Sockets.SocketException] {
            $s.Dispose()
            Start-Sleep -Milliseconds 5
        }
    }
}

function Wait-AgentPong {
    <#
    Sends 'ping N' every -PingIntervalMs (50 ms) on a connected agent socket (they queue in QEMU until the guest
    reads its port) until a 'pong N' comes back; returns the number of pings sent and the token answered.
    #>
    param([Net.Sockets.Socket] $Socket, $Raw, [double] $TimeoutSec = 90, [int] $FirstToken = 1, [int] $PingIntervalMs = 50)
    $sw = [Diagnostics.Stopwatch]::StartNew()
    $buffer = [byte[]]::new(4096)
    $pending = ''
    $token = $FirstToken - 1
    $sent = 0
    while ($true) {
        if ($Raw.Process.HasExited) { throw "$(Get-RawExitText $Raw) (before the guest answered)" }
        if ($sw.Elapsed.TotalSeconds -gt $TimeoutSec) { throw "The raw guest did not answer a ping within $TimeoutSec s." }
        $token++
        $sent++
        $null = $Socket.Send([Text.Encoding]::UTF8.GetBytes("ping $token`n"))
        $next = $sw.Elapsed.TotalMilliseconds + $PingIntervalMs
        while (($remaining = $next - $sw.Elapsed.TotalMilliseconds) -gt 0) {
            if (-not $Socket.Poll([int]($remaining * 1000), [Net.Sockets.SelectMode]::SelectRead)) { continue }
            $got = $Socket.Receive($buffer)
            if ($got -eq 0) { throw 'QEMU closed the agent socket.' }
            $pending += [Text.Encoding]::UTF8.GetString($buffer, 0, $got)
            while (($nl = $pending.IndexOf("`n")) -ge 0) {
                $line = $pending.Substring(0, $nl).TrimEnd("`r")
                $pending = $pending.Substring($nl + 1)
                if ($line -match '^pong (\d+)$' -and [int]$Matches[1] -ge $FirstToken) {
                    return [pscustomobject]@{ Sent = $sent; Token = [int]$Matches[1]; LastToken = $token }
                }
            }
        }
    }
}

#endregion

#region module VMs

function Read-HostLogTimeline {
    <# The host.log events of one VM (-Events: name → regex of the message), in ms since $Start (UTC). #>
    param([string] $Path, [DateTimeOffset] $Start, [Collections.IDictionary] $Events)
    $timeline = [ordered]@{}
    foreach ($line in Get-Content $Path -ErrorAction Ignore) {
        if ($line -notmatch '^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (.*)$') { continue }
        $at = [DateTimeOffset]::Parse($Matches[1], [Globalization.CultureInfo]::InvariantCulture)
        $message = $Matches[2]
        foreach ($key in $Events.Keys) {
            if (-not $timeline.Contains($key) -and $message -match $Events[$key]) { $timeline[$key] = [math]::Round(($at - $Start).TotalMilliseconds, 1) }
        }
    }
    $timeline
}

function Wait-ModulePong {
    <# Test-MacVmGuest retried every 50 ms until the first pong (up to -TimeoutSec on -Clock); returns the ping, the attempts and the time. #>
    param([string] $Name, [Diagnostics.Stopwatch] $Clock, [double] $TimeoutSec = 90)
    $attempts = 0
    while ($true) {
        $attempts++
        try {
            $ping = Test-MacVmGuest -Name $Name -ErrorAction Stop
            return [pscustomobject]@{ Ping = $ping; Attempts = $attempts; AtMs = $Clock.Elapsed.TotalMilliseconds }
        }
        catch {
            $state = (Get-MacVm -Name $Name -ErrorAction Ignore).State
            if ($state -ne 'Running' -or $Clock.Elapsed.TotalSeconds -gt $TimeoutSec) { throw "The guest of VM '$Name' did not answer (VM $state): $_" }
            Start-Sleep -Milliseconds 50
        }
    }
}

function Measure-VmRemoval {
    <# Remove-MacVm -Force of one VM; returns the milliseconds it took. #>
    param([string] $Name)
    $sw = [Diagnostics.Stopwatch]::StartNew()
    Remove-MacVm -Name $Name -Force -Confirm:$false -ErrorAction Stop
    $sw.Elapsed.TotalMilliseconds
}

#endregion

#region set-up and results

function Get-TestGuest {
    <# The test guest's files (kernel, initrd, disk) and kernel command line, from guest.json ($Meta) in $GuestDir. #>
    param([string] $GuestDir, $Meta)
    [pscustomobject]@{
        Kernel      = Join-Path $GuestDir $Meta.kernel
        Initrd      = Join-Path $GuestDir $Meta.initrd
        Disk        = Join-Path $GuestDir $Meta.disk
        CommandLine = $Meta.cmdline
    }
}

function New-ScratchStore {
    <# Makes and returns a new scratch store /tmp/macvm-bench-XXXXXX (short: unix socket paths are limited to 108 bytes). #>
    $store = Join-Path '/tmp' ('macvm-bench-' + [IO.Path]::GetRandomFileName().Replace('.', '').Substring(0, 6))
    $null = New-Item -ItemType Directory -Path $store
    $store
}

function Get-LoadAverage {
    <# The 1, 5 and 15 minute load averages of the machine ('0.52 0.40 0.33'). #>
    (Get-Content /proc/loadavg).Split(' ')[0..2] -join ' '
}

function Get-MachineInfo {
    <# The 'machine' section of the results: CPUs, kernel, load averages, QEMU (then -Extra's entries), pwsh and .NET versions. #>
    param([string] $LoadAverageStart, [string] $LoadAverageEnd, [string] $Qemu, [Collections.IDictionary] $Extra = @{})
    $machine = [ordered]@{
        processorCount   = [Environment]::ProcessorCount
        kernel           = (Get-Content /proc/sys/kernel/osrelease)
        loadAverageStart = $LoadAverageStart
        loadAverageEnd   = $LoadAverageEnd
        qemu             = (& $Qemu --version | Select-Object -First 1)
    }
    foreach ($key in $Extra.Keys) { $machine[$key] = $Extra[$key] }
    $machine['pwsh'] = "$($PSVersionTable.PSVersion)"
    $machine['dotnet'] = [Runtime.InteropServices.RuntimeInformation]::FrameworkDescription
    $machine
}

#endregion

#region clean-up and output

function Remove-ScratchVm {
    <# The final clean-up's removal of every VM (with -Snapshots, every snapshot too) of the store in MACVM_HOME; a failure is reported, not thrown. #>
    param([switch] $Snapshots)
    try {
        if (Get-Command Get-MacVm -ErrorAction Ignore) {
            Get-MacVm -ErrorAction Ignore | Remove-MacVm -Force -Confirm:$false -ErrorAction Continue
            if ($Snapshots) { Get-MacVmSnapshot -ErrorAction Ignore | Remove-MacVmSnapshot -Force -Confirm:$false -ErrorAction Continue }
        }
    }
    catch { Write-Host "Removing the VMs$(if ($Snapshots) { ' and snapshots' }) failed: $_" }
}

function Stop-ScratchProcess {
    <#
    The final clean-up: kills the raw QEMUs still in -Tracker, then every process of the scratch store (Get-ScratchProcess),
    saying which; returns those left-over processes, one by one (the benchmark fails when there were any).
    #>
    param([string] $Store, [Collections.Generic.List[Diagnostics.Process]] $Tracker, [string[]] $ProcessName = $script:DefaultScratchProcessNames)
    foreach ($p in @($Tracker)) {
        try { if (-not $p.HasExited) { $p.Kill(); $null = $p.WaitForExit(5000) } } catch { Write-Host "Killing raw QEMU failed: $_" }
    }
    $leftovers = @(Get-ScratchProcess -Store $Store -ProcessName $ProcessName)
    if ($leftovers.Count -gt 0) {
        Write-Host "Left-over VM processes (killed now): $(($leftovers | ForEach-Object { "$($_.ProcessName) $($_.Id)" }) -join ', ')"
        $leftovers | Stop-Process -Force -ErrorAction Ignore
    }
    $leftovers
}

function Format-Verdict {
    <# 'PASS' or 'MISS', for the Result column of the table. #>
    param($Pass)
    if ($Pass) { 'PASS' } else { 'MISS' }
}

function Format-Range {
    <# 'median unit (min–max)' of a Get-Stats result, numbers in the format -Format, for the Value column of the table. #>
    param($Stats, $Unit, $Format)
    "{0:$Format} $Unit ({1:$Format}–{2:$Format})" -f $Stats.median, $Stats.min, $Stats.max
}

#endregion

function ConvertTo-ComparableArguments {
    <#
    A QEMU argument list with what differs between any two VMs by design replaced by placeholders: the
    VM's folder, its name, its kernel and initramfs paths, its NIC's MAC (each VM has its own), and the
    file its memory lives in (a running VM's own shared file, or a snapshot's image a restore maps).
    #>
    param([string[]] $Arguments, [string] $Dir)
    , @(for ($i = 0; $i -lt $Arguments.Count; $i++) {
            $a = $Arguments[$i]
            $prev = if ($i -gt 0) { $Arguments[$i - 1] } else { '' }
            if ($prev -in '-kernel', '-initrd') { "<$($prev.TrimStart('-'))>" }
            elseif ($prev -eq '-name') { $a -replace '^macvm-[^,]*', 'macvm-<name>' }
            else { $a.Replace($Dir, '<dir>') -replace 'mac=[0-9a-f:]{17}', 'mac=<mac>' -replace 'mem-path=[^,]*,share=(on|off)', 'mem-path=<memory>' }
        })
}

Export-ModuleMember -Function ConvertTo-ComparableArguments, Get-Stats, Get-ProcCpuMs, Get-ProcessCommandLine, Get-ScratchProcess, Get-ForeignVmCount, Invoke-Native,
    Start-RawQemu, Stop-RawQemu, Get-RawExitText, Connect-UnixSocket, Wait-AgentPong, Read-HostLogTimeline, Wait-ModulePong,
    Get-TestGuest, New-ScratchStore, Get-LoadAverage, Get-MachineInfo, Measure-VmRemoval, Remove-ScratchVm, Stop-ScratchProcess, Format-Verdict, Format-Range
