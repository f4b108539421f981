#Requires -Version 7.4
<#
.SYNOPSIS
    The network benchmarks of MacVm: re-plug time, throughput through the host's relay against QEMU on the
    same server directly, and restore → IP assigned → first ping reply.
.DESCRIPTION
    Two test network servers (tests/NetworkServer, $env:MACVM_NETWORK_SERVER, built by build.ps1) log every
    frame with its sender's client socket path and the server's clock (the same clock as this script's).

      1. Re-plug: a VM on server A with an address pings the gateway every 10 ms (busybox ping -i 0.01) while
         Connect-MacVmNetwork moves it to server B (then back, alternating). Figure: the last frame the VM's
         client path sent to the old server → its first frame on the new one (target ≤ 200 ms; the ping
         interval is the resolution). Also the cmdlet's wall time.
      2. Throughput: the guest sends ~12 MB of full-size frames to the server (200 pings of 60000 bytes, each
         41 IP fragments the kernel sends back to back; busybox has no UDP client), once through
         the module (QEMU → host relay → server) and once from a raw QEMU whose NIC's dgram netdev is connected
         to the same server directly (the module VM's own command line from /proc, with the NIC's far end
         replaced by the server's socket). Figure: bytes the server received / time from its first to its last
         full-size frame, module / raw (target ≥ 0.8). Rounds interleave raw and module.
      3. Restore → IP → ping: a snapshot saved unplugged and without an address (the seed's way) is restored onto
         server A, Set-MacVmGuestIp -Wait, then the guest pings the gateway. Figures: from just before
         Restore-MacVmSnapshot to the restore's return, to the IP acknowledged, and to the server answering
         the first echo request (its log), beside the seed's "about 7 s to agent connected" (Apple Silicon,
         macOS guest).

    Everything runs in a scratch store /tmp/macvm-bench-XXXX, removed at the end with every VM, server and QEMU
    this script started. Exit code: 0 when every figure was measured (missed targets are reported, not failures).
.EXAMPLE
    pwsh -NoProfile -File tests/Benchmarks/Invoke-NetworkBenchmarks.ps1 -ModulePath out/MacVm/MacVm.psd1 -GuestDir out/guest
#>
[CmdletBinding()]
param(
    # The module manifest (out/MacVm/MacVm.psd1).
    [Parameter(Mandatory)] [string] $ModulePath,
    # The test guest's folder (output of tests/guest/build.sh, with guest.json).
    [Parameter(Mandatory)] [string] $GuestDir,
    # Timed rounds of each measurement (re-plugs: twice as many).
    [ValidateRange(1, 100)] [int] $Runs = 5,
    # Where the figures go as JSON.
    [string] $OutFile = (Join-Path (Split-Path -Parent (Split-Path -Parent $PSScriptRoot)) 'out/bench/network.json')
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
Import-Module $ModulePath
Import-Module (Join-Path $PSScriptRoot 'BenchmarkSupport.psm1') -Force
# The test network server's helpers only (its other functions share names with BenchmarkSupport's).
Import-Module (Join-Path $PSScriptRoot '../Pester/TestSupport.psm1') -Function Start-TestNetwork, Stop-TestNetwork, Get-TestNetworkFrame -Force

$qemu = (Get-Command qemu-system-x86_64).Source
$loadStart = Get-LoadAverage
$store = New-ScratchStore
$env:MACVM_HOME = $store
$tracker = [Collections.Generic.List[Diagnostics.Process]]::new()
$failed = $false
$nets = @()
$results = [ordered]@{}

function Get-Now { [DateTimeOffset]::UtcNow.ToUnixTimeMilliseconds() }

function Get-ClientFrames($Net, [string] $Client, [double] $Since = 0) {
    @(Get-TestNetworkFrame $Net | Where-Object { $_.Client -eq $Client -and $_.Ms -ge $Since })
}

# Bytes per second the server received from $Client in full-size frames since $Since (first to last such frame).
function Get-Throughput($Net, [string] $Client, [double] $Since) {
    $udp = @(Get-ClientFrames $Net $Client $Since | Where-Object Length -gt 1000)
    if ($udp.Count -lt 100) { throw "The server saw only $($udp.Count) full-size frames from '$Client'." }
    $bytes = ($udp | Measure-Object Length -Sum).Sum
    $ms = $udp[-1].Ms - $udp[0].Ms
    [pscustomobject]@{ MBps = $bytes / 1MB / ($ms / 1000); Frames = $udp.Count; Bytes = $bytes }
}

# The guest's side of the throughput test (busybox has no UDP client): 200 pings of 60000 bytes, 2 ms apart,
# i.e. 41 full-size IP fragments each that the kernel sends back to back (~12 MB, one way: the server does not
# reassemble, so it does not answer). Bigger socket and queue limits, or the guest's own queue refuses them.
function Get-BlastScript([string] $Address) {
    "ip link set eth0 up; ip -4 addr flush dev eth0; ip addr add $Address/24 dev eth0; " +
    'n=0; while [ "$(cat /sys/class/net/eth0/operstate)" != up ] && [ $n -lt 50 ]; do sleep 0.1; n=$((n+1)); done; ' +
    'echo 16777216 > /proc/sys/net/core/wmem_default; echo 16777216 > /proc/sys/net/core/wmem_max; ip link set eth0 txqueuelen 10000; ' +
    'ping -c 1 -W 2 10.0.2.1 >/dev/null; timeout 6 ping -q -c 200 -s 60000 -i 0.002 10.0.2.1 >/dev/null; echo done'
}

# Runs a script through a raw QEMU's agent socket (the 'run' request); returns the exit code.
function Invoke-RawGuest([Net.Sockets.Socket] $Socket, [string] $Script, [double] $TimeoutSec = 120) {
    $b64 = [Convert]::ToBase64String([Text.Encoding]::UTF8.GetBytes($Script))
    $null = $Socket.Send([Text.Encoding]::UTF8.GetBytes("run $b64`n"))
    $buffer = [byte[]]::new(65536)
    $pending = ''
    $sw = [Diagnostics.Stopwatch]::StartNew()
    while ($sw.Elapsed.TotalSeconds -lt $TimeoutSec) {
        if (-not $Socket.Poll(200000, [Net.Sockets.SelectMode]::SelectRead)) { continue }
        $got = $Socket.Receive($buffer)
        if ($got -eq 0) { throw 'QEMU closed the agent socket.' }
        $pending += [Text.Encoding]::UTF8.GetString($buffer, 0, $got)
        while (($nl = $pending.IndexOf("`n")) -ge 0) {
            $line = $pending.Substring(0, $nl)
            $pending = $pending.Substring($nl + 1)
            if ($line -match '^ok (\d+) ') { return [int]$Matches[1] }
        }
    }
    throw "The raw guest did not finish its script within $TimeoutSec s."
}

try {
    $nets = @(
        Start-TestNetwork -Path "$store/a.sock" -Gateway 10.0.2.1
        Start-TestNetwork -Path "$store/b.sock" -Gateway 10.0.2.1)
    $a, $b = $nets
    $meta = Get-Content -Raw (Join-Path $GuestDir 'guest.json') | ConvertFrom-Json
    $g = Get-TestGuest -GuestDir $GuestDir -Meta $meta
    $null = Import-MacVmImage -Name tiny -Kernel $g.Kernel -Initrd $g.Initrd -Disk $g.Disk -KernelCommandLine $g.CommandLine -GuestAgent -ReadyMarker MACVM-GUEST-READY

    # ---- 1. re-plug
    Write-Host '== re-plug'
    $vm = New-MacVm -Name bench1 -Image tiny -Network $a.SocketPath | Wait-MacVm -Condition GuestAgentReady -TimeoutSec 90 -PassThru
    $null = Set-MacVmGuestIp -Name bench1 -IPAddress 10.0.2.15 -PrefixLength 24 -Gateway 10.0.2.1 -Wait -TimeoutSec 60
    $client = (Get-MacVm -Name bench1).Status.Network.ClientSocketPath
    $gaps = @(); $cmdletMs = @()
    $current = $a
    for ($i = 1; $i -le 2 * $Runs; $i++) {
        $null = Invoke-MacVmGuestCommand -Name bench1 -ScriptText 'ping -i 0.01 -w 3 10.0.2.1 >/dev/null 2>&1 </dev/null &'
        Start-Sleep -Milliseconds 1000
        $next = if ($current -eq $a) { $b } else { $a }
        $t0 = Get-Now
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $null = Connect-MacVmNetwork -Name bench1 -SocketPath $next.SocketPath
        $cmdletMs += $sw.Elapsed.TotalMilliseconds
        Start-Sleep -Milliseconds 2500
        $old = @(Get-ClientFrames $current $client | Where-Object Kind -like 'icmp*')
        $new = @(Get-ClientFrames $next $client $t0 | Where-Object Kind -like 'icmp*')
        if ($old.Count -eq 0 -or $new.Count -eq 0) { throw "Re-plug round $i saw no ping frames (old $($old.Count), new $($new.Count))." }
        $gaps += $new[0].Ms - $old[-1].Ms
        $current = $next
    }
    $results.replug = [ordered]@{ gapMs = Get-Stats $gaps; cmdletMs = Get-Stats $cmdletMs; targetMs = 200; pass = ((Get-Stats $gaps).median -le 200) }

    # ---- 2. throughput: module (relay) against raw QEMU on the server directly
    Write-Host '== throughput'
    if ($current -ne $a) { $null = Connect-MacVmNetwork -Name bench1 -SocketPath $a.SocketPath }
    $qemuPid = (Get-MacVm -Name bench1).HypervisorProcessId
    $args0 = @((Get-Content -Raw "/proc/$qemuPid/cmdline").TrimEnd("`0").Split("`0") | Select-Object -Skip 1)
    $vmDir = "$store/vms/bench1"
    $rawDir = "$store/raw"
    $null = New-Item -ItemType Directory -Path $rawDir
    $rawClient = "$rawDir/client.sock"
    Invoke-Native qemu-img @('create', '-q', '-f', 'qcow2', '-b', "$store/images/tiny/disk.qcow2", '-F', 'qcow2', "$rawDir/disk.qcow2")
    $rawArgs = foreach ($arg in $args0) {
        if ($arg -like 'dgram,id=net0,*') { "dgram,id=net0,local.type=unix,local.path=$rawClient,remote.type=unix,remote.path=$($a.SocketPath)" }
        elseif ($arg -like '*mac=*') { $arg -replace 'mac=[0-9a-f:]+', 'mac=02:00:00:00:99:01' }
        else { $arg.Replace("$vmDir/", "$rawDir/") }
    }
    $raw = Start-RawQemu -Qemu $qemu -Arguments $rawArgs -Tracker $tracker
    $agent = Connect-UnixSocket -Path "$rawDir/agent.sock" -Raw $raw
    $null = Wait-AgentPong -Socket $agent -Raw $raw
    $moduleRates = @(); $rawRates = @()
    for ($i = 1; $i -le $Runs; $i++) {
        $t0 = Get-Now
        $code = Invoke-RawGuest $agent (Get-BlastScript '10.0.2.16')
        if ($code -notin 0, 1, 143) { throw "The raw guest's blast failed ($code)." }
        Start-Sleep -Milliseconds 300
        $rawRates += (Get-Throughput $a $rawClient $t0).MBps
        $t0 = Get-Now
        $r = Invoke-MacVmGuestCommand -Name bench1 -ScriptText (Get-BlastScript '10.0.2.15') -TimeoutSec 120
        if ($r.ExitCode -notin 0, 1, 143) { throw "The module guest's blast failed: $($r.Output)" }
        Start-Sleep -Milliseconds 300
        $moduleRates += (Get-Throughput $a $client $t0).MBps
    }
    $agent.Dispose()
    Stop-RawQemu -Raw $raw -Tracker $tracker
    $ratio = (Get-Stats $moduleRates 2).median / (Get-Stats $rawRates 2).median
    $results.throughput = [ordered]@{ moduleMBps = Get-Stats $moduleRates 2; rawMBps = Get-Stats $rawRates 2; ratio = [math]::Round($ratio, 2); target = 0.8; pass = ($ratio -ge 0.8) }
    Remove-MacVm -Name bench1 -Force

    # ---- 3. restore → IP assigned → first ping reply
    Write-Host '== restore to ping'
    $null = New-MacVm -Name snapsrc -Image tiny | Wait-MacVm -Condition GuestAgentReady -TimeoutSec 90
    $null = Save-MacVm -Name snapsrc -SnapshotName netbase -Stop
    Remove-MacVm -Name snapsrc -Force
    $restoredMs = @(); $ipMs = @(); $pingMs = @()
    for ($i = 1; $i -le $Runs; $i++) {
        $t0 = Get-Now
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $r = Restore-MacVmSnapshot -SnapshotName netbase -Name "r$i" -Network $a.SocketPath -NoFallback
        $restoredMs += $sw.Elapsed.TotalMilliseconds
        $null = Set-MacVmGuestIp -Name "r$i" -IPAddress 10.0.2.30 -PrefixLength 24 -Gateway 10.0.2.1 -Wait -TimeoutSec 60
        $ipMs += $sw.Elapsed.TotalMilliseconds
        $null = Invoke-MacVmGuestCommand -Name "r$i" -ScriptText 'n=0; while [ "$(cat /sys/class/net/eth0/operstate)" != up ] && [ $n -lt 50 ]; do sleep 0.1; n=$((n+1)); done; ping -c 1 -W 2 10.0.2.1'
        $rClient = (Get-MacVm -Name "r$i").Status.Network.ClientSocketPath
        $echo = @(Get-ClientFrames $a $rClient $t0 | Where-Object Kind -eq 'icmp-echo-request')
        if ($echo.Count -eq 0) { throw "Restore round ${i}: no echo request reached the server." }
        $pingMs += $echo[0].Ms - $t0
        Remove-MacVm -Name "r$i" -Force
    }
    $results.restoreToPing = [ordered]@{
        restoredMs = Get-Stats $restoredMs; ipAssignedMs = Get-Stats $ipMs; firstPingReplyMs = Get-Stats $pingMs
        seed = 'about 7 s from launch to guest agent connected (Apple Silicon, macOS guest, cached snapshot)'
    }
}
catch {
    Write-Host "Benchmark failed: $_`n$($_.ScriptStackTrace)"
    $failed = $true
}
finally {
    foreach ($n in $nets) { Stop-TestNetwork $n }
    Remove-ScratchVm -Snapshots
    $left = @(Stop-ScratchProcess -Store $store -Tracker $tracker)
    if ($left.Count -gt 0) { $failed = $true }
    Remove-Item -Recurse -Force $store -ErrorAction Ignore
}

$doc = [ordered]@{
    benchmark = 'network'
    date      = [DateTimeOffset]::UtcNow.ToString('o')
    machine   = Get-MachineInfo -LoadAverageStart $loadStart -LoadAverageEnd (Get-LoadAverage) -Qemu $qemu
    results   = $results
}
$null = New-Item -ItemType Directory -Force -Path (Split-Path -Parent $OutFile)
$doc | ConvertTo-Json -Depth 8 | Set-Content -Path $OutFile
Write-Host "Figures in $OutFile"
if ($results.Contains('replug')) { Write-Host ("re-plug gap          {0} (target ≤ 200 ms) {1}; cmdlet {2}" -f (Format-Range $results.replug.gapMs 'ms' '0'), (Format-Verdict $results.replug.pass), (Format-Range $results.replug.cmdletMs 'ms' '0')) }
if ($results.Contains('throughput')) { Write-Host ("throughput           module {0}, raw {1}: {2}× (target ≥ 0.8) {3}" -f (Format-Range $results.throughput.moduleMBps 'MB/s' '0.00'), (Format-Range $results.throughput.rawMBps 'MB/s' '0.00'), $results.throughput.ratio, (Format-Verdict $results.throughput.pass)) }
if ($results.Contains('restoreToPing')) { Write-Host ("restore → ping       restored {0}, IP {1}, first ping reply {2} (seed: ~7 s to agent connected)" -f (Format-Range $results.restoreToPing.restoredMs 'ms' '0'), (Format-Range $results.restoreToPing.ipAssignedMs 'ms' '0'), (Format-Range $results.restoreToPing.firstPingReplyMs 'ms' '0')) }
if ($failed) { exit 1 }
exit 0
