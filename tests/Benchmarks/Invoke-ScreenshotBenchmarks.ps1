#Requires -Version 7.4
<#
.SYNOPSIS
    The screenshot benchmark of MacVm: Get-MacVmScreenshot's thumbnail end to end against a raw QMP screendump
    of the same guest.
.DESCRIPTION
    One run, on the test guest (TCG, 1 CPU, 256 MB), with its marker drawn on the 1280x800 framebuffer console:

      Module: a VM made with New-MacVm -ScreenshotPort 0. Timed in each round:
        - thumbnail: Get-MacVmScreenshot -Name <vm> (JPEG, 800 px wide, quality 60), wall time of the cmdlet:
          connect to the host, vm.screenshot, QMP screendump, SkiaSharp decode + scale + encode, the bytes back
          as JSON, the MacVmScreenshot object. Target: ≤ 150 ms (median).
        - host: the host's own capture + encode time for that thumbnail (DurationMs).
        - full PNG: Get-MacVmScreenshot -Full -Format Png (QEMU's PNG passed through: no encoding).
        - endpoint: GET /screenshot with the token (HttpClient, loopback), the thumbnail a dashboard gets.
      Raw: a QEMU started by this script with the same guest and display (-device VGA), driven over QMP from
        this script: screendump {filename, format: png}, then the file read into memory and deleted — what the
        module's driver does before encoding. Figure: module thumbnail median / raw median.

    Rounds interleave raw and module after three untimed warm-up rounds (the first screenshot loads
    SkiaSharp into the host: its cost and the host's memory before and after are reported separately), so
    machine noise hits both alike. The number of QEMU processes not started by this script (noise) is recorded.

    Everything runs in a scratch store /tmp/macvm-bench-XXXX, removed at the end with every VM and QEMU this
    script started. Exit code 0 when every figure was measured (a missed target is reported, not a failure);
    1 when a measurement could not be made or VM processes were left over.
.EXAMPLE
    pwsh -NoProfile -File tests/Benchmarks/Invoke-ScreenshotBenchmarks.ps1 -ModulePath out/MacVm/MacVm.psd1 -GuestDir out/guest
#>
[CmdletBinding()]
param(
    # The module manifest (out/MacVm/MacVm.psd1).
    [Parameter(Mandatory)] [string] $ModulePath,
    # The test guest's folder (output of tests/guest/build.sh, with guest.json).
    [Parameter(Mandatory)] [string] $GuestDir,
    # Timed rounds.
    [ValidateRange(1, 500)] [int] $Runs = 30,
    # Where the figures go as JSON.
    [string] $OutFile = (Join-Path (Split-Path -Parent (Split-Path -Parent $PSScriptRoot)) 'out/bench/screenshot.json')
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
$ProgressPreference = 'SilentlyContinue'

$ThumbnailTargetMs = 150
$BootTimeoutSec = 90
$ScratchProcessNames = @('qemu-system-x86_64', 'MacVm.Host', 'setpriv', 'sh')

Import-Module (Join-Path $PSScriptRoot 'BenchmarkSupport.psm1') -Force

function Wait-ReadyLine([string] $ConsoleLog, [scriptblock] $Alive) {
    # The guest prints its ready line after it drew its marker on the framebuffer console.
    $sw = [Diagnostics.Stopwatch]::StartNew()
    while (-not (Select-String -Quiet -SimpleMatch 'MACVM-GUEST-READY' -Path $ConsoleLog -ErrorAction Ignore)) {
        $life = & $Alive
        if ($life -ne $true) { throw "The guest stopped before its ready line ($ConsoleLog): $life" }
        if ($sw.Elapsed.TotalSeconds -gt $BootTimeoutSec) { throw "No ready line in $ConsoleLog within $BootTimeoutSec s." }
        Start-Sleep -Milliseconds 50
    }
}

function Connect-Qmp([string] $Path, $Raw) {
    $socket = Connect-UnixSocket -Path $Path -Raw $Raw
    $stream = [Net.Sockets.NetworkStream]::new($socket, $true)
    $qmp = [pscustomobject]@{
        Socket = $socket
        Reader = [IO.StreamReader]::new($stream, [Text.UTF8Encoding]::new($false))
        Writer = [IO.StreamWriter]::new($stream, [Text.UTF8Encoding]::new($false)) -as [IO.StreamWriter]
    }
    $qmp.Writer.AutoFlush = $true
    $null = $qmp.Reader.ReadLine() # greeting
    $null = Invoke-Qmp $qmp 'qmp_capabilities'
    $qmp
}

function Invoke-Qmp($Qmp, [string] $Command, [hashtable] $Arguments) {
    $msg = @{ execute = $Command }
    if ($Arguments) { $msg.arguments = $Arguments }
    $Qmp.Writer.WriteLine(($msg | ConvertTo-Json -Compress))
    while ($true) {
        $line = $Qmp.Reader.ReadLine()
        if ($null -eq $line) { throw "QEMU closed QMP during '$Command'." }
        $reply = $line | ConvertFrom-Json
        if ($reply.PSObject.Properties['event']) { continue }
        if ($reply.PSObject.Properties['error']) { throw "QEMU refused '$Command': $($reply.error.desc)" }
        return $reply.return
    }
}

function Get-RssKB([int] $ProcessId) {
    $line = (Get-Content "/proc/$ProcessId/status") -match '^VmRSS:'
    [int](($line -split '\s+')[1])
}

$exitCode = 0
$script:RawProcesses = [Collections.Generic.List[Diagnostics.Process]]::new()
$script:Store = $null
$rawQmp = $null
try {
    $meta = Get-Content -Raw (Join-Path $GuestDir 'guest.json') | ConvertFrom-Json
    $guest = Get-TestGuest -GuestDir $GuestDir -Meta $meta
    $qemu = (Get-Command qemu-system-x86_64).Source
    $loadBefore = Get-LoadAverage
    $script:Store = New-ScratchStore
    $env:MACVM_HOME = $script:Store
    Import-Module $ModulePath -Force

    Write-Host '== Booting the module VM and a raw QEMU of the same guest'
    $null = Import-MacVmImage -Name tiny -Kernel $guest.Kernel -Initrd $guest.Initrd -Disk $guest.Disk -KernelCommandLine $guest.CommandLine -GuestAgent -ReadyMarker MACVM-GUEST-READY
    $vm = New-MacVm -Name shotbench -Image tiny -ScreenshotPort 0
    Wait-ReadyLine (Join-Path $vm.Path 'console.log') { $v = Get-MacVm -Name shotbench; if ($v.State -eq 'Running') { $true } else { "VM $($v.State) $($v.StateReason)" } }
    $vm = Get-MacVm -Name shotbench

    $rawDir = Join-Path $script:Store 'raw'
    $null = New-Item -ItemType Directory $rawDir
    Invoke-Native qemu-img @('create', '-q', '-f', 'qcow2', '-b', $guest.Disk, '-F', 'qcow2', "$rawDir/disk.qcow2")
    $rawArgs = @(
        '-machine', 'pc-i440fx-7.2,accel=tcg', '-m', '256', '-smp', '1', '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
        '-qmp', "unix:$rawDir/qmp.sock,server=on,wait=off",
        '-serial', "file:$rawDir/console.log",
        '-device', 'virtio-serial-pci,id=vser0',
        '-chardev', "socket,id=agent0,path=$rawDir/agent.sock,server=on,wait=off",
        '-device', 'virtserialport,id=agentport,bus=vser0.0,chardev=agent0,name=org.macvm.agent',
        '-device', 'VGA,id=vga0',
        '-blockdev', "driver=file,node-name=file0,filename=$rawDir/disk.qcow2", '-blockdev', 'driver=qcow2,node-name=disk0,file=file0',
        '-device', 'virtio-blk-pci,id=blk0,drive=disk0',
        '-kernel', $guest.Kernel, '-initrd', $guest.Initrd, '-append', $guest.CommandLine)
    $raw = Start-RawQemu -Qemu $qemu -Arguments $rawArgs -Tracker $script:RawProcesses
    $rawQmp = Connect-Qmp "$rawDir/qmp.sock" $raw
    Wait-ReadyLine "$rawDir/console.log" { if ($raw.Process.HasExited) { Get-RawExitText $raw } else { $true } }

    $rawDump = "$rawDir/screendump.png"
    $measureRaw = {
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $null = Invoke-Qmp $rawQmp 'screendump' @{ filename = $rawDump; format = 'png' }
        $bytes = [IO.File]::ReadAllBytes($rawDump)
        [IO.File]::Delete($rawDump)
        $ms = $sw.Elapsed.TotalMilliseconds
        if ($bytes.Length -lt 100) { throw "The raw screendump has $($bytes.Length) bytes." }
        $ms
    }
    $http = [Net.Http.HttpClient]::new([Net.Http.SocketsHttpHandler]@{ UseProxy = $false })
    $http.DefaultRequestHeaders.Authorization = [Net.Http.Headers.AuthenticationHeaderValue]::new('Bearer', $vm.GetScreenshotToken())
    $measureEndpoint = {
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $response = $http.GetAsync($vm.ScreenshotUrl).GetAwaiter().GetResult()
        $bytes = $response.Content.ReadAsByteArrayAsync().GetAwaiter().GetResult()
        $ms = $sw.Elapsed.TotalMilliseconds
        if ([int]$response.StatusCode -ne 200) { throw "The endpoint answered $([int]$response.StatusCode)." }
        $response.Dispose()
        $ms
    }

    Write-Host '== First screenshot (loads SkiaSharp into the host) and warm-up'
    $hostPid = $vm.HostProcessId
    $rssBeforeKB = Get-RssKB $hostPid
    $sw = [Diagnostics.Stopwatch]::StartNew()
    $first = Get-MacVmScreenshot -Name shotbench
    $firstMs = $sw.Elapsed.TotalMilliseconds
    $rssAfterFirstKB = Get-RssKB $hostPid
    if ($first.Width -ne 800) { throw "The thumbnail is $($first.Width) px wide, not 800." }
    foreach ($i in 1..3) { $null = & $measureRaw; $null = Get-MacVmScreenshot -Name shotbench; $null = & $measureEndpoint }
    Write-Host ('  first thumbnail {0:0} ms (host {1:0} ms); host RSS {2:0.0} MB before, {3:0.0} MB after' -f $firstMs, $first.DurationMs, ($rssBeforeKB / 1KB), ($rssAfterFirstKB / 1KB))

    Write-Host "== $Runs rounds (raw screendump, module thumbnail, endpoint thumbnail, module full PNG)"
    $rawMs = [Collections.Generic.List[double]]::new()
    $thumbMs = [Collections.Generic.List[double]]::new()
    $hostMs = [Collections.Generic.List[double]]::new()
    $endpointMs = [Collections.Generic.List[double]]::new()
    $fullPngMs = [Collections.Generic.List[double]]::new()
    $foreign = [Collections.Generic.List[int]]::new()
    $thumbBytes = 0
    foreach ($round in 1..$Runs) {
        $foreign.Add((Get-ForeignVmCount -Store $script:Store))
        $rawMs.Add((& $measureRaw))
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $shot = Get-MacVmScreenshot -Name shotbench
        $thumbMs.Add($sw.Elapsed.TotalMilliseconds)
        $hostMs.Add($shot.DurationMs)
        $thumbBytes = $shot.SizeBytes
        $endpointMs.Add((& $measureEndpoint))
        $sw.Restart()
        $null = Get-MacVmScreenshot -Name shotbench -Full -Format Png
        $fullPngMs.Add($sw.Elapsed.TotalMilliseconds)
        if ($round % 10 -eq 0) { Write-Host ('  round {0}: raw {1:0} ms, thumbnail {2:0} ms (host {3:0}), endpoint {4:0} ms, full PNG {5:0} ms' -f $round, $rawMs[-1], $thumbMs[-1], $hostMs[-1], $endpointMs[-1], $fullPngMs[-1]) }
    }
    $rssEndKB = Get-RssKB $hostPid
    $loadAfter = Get-LoadAverage

    $raw = Get-Stats $rawMs
    $thumb = Get-Stats $thumbMs
    $results = [ordered]@{
        machine   = Get-MachineInfo -LoadAverageStart $loadBefore -LoadAverageEnd $loadAfter -Qemu $qemu
        runs      = $Runs
        otherQemuProcesses = @($foreign)
        display   = [ordered]@{ width = $first.DisplayWidth; height = $first.DisplayHeight }
        thumbnail = [ordered]@{
            endToEndMs = $thumb
            hostMs     = Get-Stats $hostMs
            bytes      = $thumbBytes
            targetMs   = $ThumbnailTargetMs
            pass       = $thumb.median -le $ThumbnailTargetMs
            ratioToRawScreendump = [math]::Round($thumb.median / $raw.median, 2)
        }
        rawScreendumpMs = $raw
        endpointThumbnailMs = Get-Stats $endpointMs
        fullPngMs = Get-Stats $fullPngMs
        firstScreenshot = [ordered]@{ ms = [math]::Round($firstMs, 1); hostMs = [math]::Round($first.DurationMs, 1) }
        hostRssMB = [ordered]@{ beforeFirst = [math]::Round($rssBeforeKB / 1KB, 1); afterFirst = [math]::Round($rssAfterFirstKB / 1KB, 1); afterRuns = [math]::Round($rssEndKB / 1KB, 1) }
    }
    $table = @(
        [pscustomobject]@{ Figure = 'Thumbnail, Get-MacVmScreenshot end to end'; Value = (Format-Range $thumb 'ms' '0'); Target = "≤ $ThumbnailTargetMs ms"; Result = ('{0:0.00}× raw {1}' -f $results.thumbnail.ratioToRawScreendump, (Format-Verdict $results.thumbnail.pass)) }
        [pscustomobject]@{ Figure = '  of which in the host (capture + encode)'; Value = (Format-Range $results.thumbnail.hostMs 'ms' '0'); Target = ''; Result = '' }
        [pscustomobject]@{ Figure = 'Raw QMP screendump + read'; Value = (Format-Range $raw 'ms' '0'); Target = ''; Result = '' }
        [pscustomobject]@{ Figure = 'Thumbnail over the HTTP endpoint'; Value = (Format-Range $results.endpointThumbnailMs 'ms' '0'); Target = ''; Result = '' }
        [pscustomobject]@{ Figure = 'Full display, PNG'; Value = (Format-Range $results.fullPngMs 'ms' '0'); Target = ''; Result = '' }
        [pscustomobject]@{ Figure = 'Host RSS before / after the first screenshot'; Value = ('{0:0.0} / {1:0.0} MB' -f $results.hostRssMB.beforeFirst, $results.hostRssMB.afterFirst); Target = ''; Result = '' }
    )
    Write-Host ''
    $table | Format-Table -AutoSize -Wrap | Out-String -Width 200 | Write-Host
    Write-Host "Load average $loadBefore at the start, $loadAfter at the end; other QEMU processes during the rounds: $(($foreign | Measure-Object -Maximum).Maximum) at most."
    $null = New-Item -ItemType Directory -Force (Split-Path -Parent $OutFile)
    $results | ConvertTo-Json -Depth 10 | Set-Content -Path $OutFile
    Write-Host "Figures written to $OutFile"
}
catch {
    Write-Host "Benchmark failed: $_"
    Write-Host $_.ScriptStackTrace
    $exitCode = 1
}
finally {
    if ($rawQmp) { try { $rawQmp.Socket.Dispose() } catch { } }
    if ($script:Store) {
        $env:MACVM_HOME = $script:Store
        Remove-ScratchVm
        $leftovers = @(Stop-ScratchProcess -Store $script:Store -Tracker $script:RawProcesses -ProcessName $ScratchProcessNames)
        if ($leftovers.Count -gt 0) { $exitCode = 1 }
        Remove-Item -Recurse -Force $script:Store -ErrorAction Ignore
        if (Test-Path $script:Store) { Write-Host "Could not remove the scratch store $script:Store."; $exitCode = 1 }
    }
}
exit $exitCode
