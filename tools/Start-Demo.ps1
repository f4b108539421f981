<#
.SYNOPSIS
    The README's first command ends here: a demo VM on the built-in default (QEMU driver, the tiny
    Linux test guest), shown, pinged, stopped and removed.
#>
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [Parameter(Mandatory)] [string] $GuestDir
)
$ErrorActionPreference = 'Stop'
Import-Module $ModulePath

# The test guest as an image, named after its build so a rebuilt guest gets a new image.
$meta = Get-Content -Raw (Join-Path $GuestDir 'guest.json') | ConvertFrom-Json
$imageName = 'tiny-' + $meta.cacheKey.Substring(0, 12)
$image = Get-MacVmImage -Name $imageName -ErrorAction SilentlyContinue
if (-not $image) {
    $image = Import-MacVmImage -Name $imageName -Kernel (Join-Path $GuestDir $meta.kernel) -Initrd (Join-Path $GuestDir $meta.initrd) `
        -Disk (Join-Path $GuestDir $meta.disk) -KernelCommandLine $meta.cmdline -GuestAgent -ReadyMarker 'MACVM-GUEST-READY'
}
Write-Host "Store: $(if ($env:MACVM_HOME) { $env:MACVM_HOME } else { 'the default (~/.local/share/macvm)' })"
$image | Format-Table | Out-Host

$name = 'demo-' + [IO.Path]::GetRandomFileName().Substring(0, 6)
try {
    $sw = [Diagnostics.Stopwatch]::StartNew()
    $vm = New-MacVm -Name $name -Image $imageName
    Write-Host "New-MacVm took $($sw.ElapsedMilliseconds) ms; the VM:"
    $vm | Format-List Name, State, Driver, Image, CpuCount, MemoryMB, Accelerator, HostProcessId, HypervisorProcessId, Path | Out-Host

    $ping = $vm | Wait-MacVm -Condition GuestAgentReady -TimeoutSec 60 -PassThru | Test-MacVmGuest
    Write-Host "The guest agent answered in $([math]::Round($ping.RoundTripMs, 1)) ms ($($sw.ElapsedMilliseconds) ms after New-MacVm started):"
    $ping | Format-Table | Out-Host
    # The guest prints its ready marker just after its agent starts answering.
    $console = Join-Path $vm.Path 'console.log'
    $deadline = [DateTime]::UtcNow.AddSeconds(5)
    while ([DateTime]::UtcNow -lt $deadline -and -not (Select-String -Quiet -Path $console -Pattern 'MACVM-GUEST-READY')) { Start-Sleep -Milliseconds 50 }
    Write-Host 'Its serial console so far:'
    Get-Content $console | Out-Host

    $stopped = Stop-MacVm -Name $name -PassThru
    Write-Host "Stopped: $($stopped.StateReason)"
}
finally {
    Remove-MacVm -Name $name -Force -Confirm:$false -ErrorAction SilentlyContinue
    Write-Host "Removed $name."
}
