#Requires -Modules @{ ModuleName = 'Pester'; ModuleVersion = '5.7.1' }
# Named snapshots of real VMs: what a guest had in memory and on disk comes back in every VM restored
# from the snapshot, restored VMs do not see each other's writes, damaged snapshots are caught.

BeforeAll {
    Import-Module $env:MACVM_MODULE -Force
    Import-Module "$PSScriptRoot/TestSupport.psm1" -Force
    $script:Store = New-TestStore
    $null = Import-TestGuest -Name tiny

    function Invoke-Guest([string] $Vm, [string] $Script) {
        $r = Invoke-MacVmGuestCommand -Name $Vm -ScriptText $Script -ErrorAction Stop
        $r.ExitCode | Should -Be 0 -Because "'$Script' should succeed in $Vm (output: $($r.Output))"
        $r.Output.Trim()
    }
    # The first 16 bytes of the data disk, read past the guest's page cache.
    $script:ReadDisk = 'echo 3 > /proc/sys/vm/drop_caches; dd if=/dev/vda bs=16 count=1 2>/dev/null | tr -d "\000"'
    function Write-Disk([string] $Vm, [string] $Text) { $null = Invoke-Guest $Vm "printf '$Text' | dd of=/dev/vda bs=512 count=1 conv=sync,fsync 2>/dev/null" }

    $null = New-MacVm -Name src -Image tiny | Wait-MacVm -Condition GuestAgentReady -TimeoutSec 60
    $null = Invoke-Guest src 'echo memory-42 > /tmp/value'
    Write-Disk src 'disk-42'
    $script:Saved = Save-MacVm -Name src -SnapshotName base -PassThru
}

AfterAll {
    Remove-TestStore -Store $script:Store
}

Describe 'Save-MacVm' {
    It 'writes a snapshot with a manifest of checksummed files and keeps the VM running' {
        $script:Saved.Name | Should -Be 'base'
        $script:Saved.SourceVm | Should -Be 'src'
        $script:Saved.Files.Role | Sort-Object | Should -Be @('disk', 'state')
        foreach ($f in $script:Saved.Files) {
            $path = Join-Path $script:Saved.Path $f.Name
            (Get-Item $path).Length | Should -Be $f.SizeBytes
            (Get-FileHash -Algorithm SHA256 $path).Hash.ToLowerInvariant() | Should -Be $f.Sha256
        }
        (Get-MacVm src).State | Should -Be 'Running'
        Invoke-Guest src 'cat /tmp/value' | Should -Be 'memory-42'
    }

    It 'refuses a VM that is not running, and a taken name' {
        $null = New-MacVm -Name idle -Image tiny -NoStart
        { Save-MacVm -Name idle -SnapshotName x -ErrorAction Stop } | Should -Throw -ErrorId 'SaveMacVmNotRunning,MacVm.Cmdlets.Commands.SaveMacVmCommand'
        { Save-MacVm -Name src -SnapshotName base -ErrorAction Stop } | Should -Throw -ErrorId 'SaveMacVmNameTaken,MacVm.Cmdlets.Commands.SaveMacVmCommand'
        Remove-MacVm idle -Confirm:$false
        Get-ChildItem -Force "$script:Store/snapshots" | Where-Object Name -like '.new-*' | Should -BeNullOrEmpty
    }

    It 'runs two saves of one VM one after the other, both whole' {
        $module = $env:MACVM_MODULE
        $jobs = 'twin-a', 'twin-b' | ForEach-Object {
            Start-ThreadJob -ArgumentList $_ { param($n) Import-Module $using:module; Save-MacVm -Name src -SnapshotName $n -PassThru }
        }
        $snaps = $jobs | Receive-Job -Wait -AutoRemoveJob -ErrorAction Stop
        $snaps.Name | Sort-Object | Should -Be @('twin-a', 'twin-b')
        $vms = 'twin-a', 'twin-b' | ForEach-Object { Restore-MacVmSnapshot -SnapshotName $_ -Name "from-$_" -NoFallback -ErrorAction Stop }
        $vms | Wait-MacVm -Condition GuestAgentReady -TimeoutSec 30
        foreach ($vm in $vms) { Invoke-Guest $vm.Name 'cat /tmp/value' | Should -Be 'memory-42' }
        $vms | Remove-MacVm -Force
        Remove-MacVmSnapshot twin-a, twin-b -Force
    }
}

Describe 'Restore-MacVmSnapshot' {
    It 'brings back memory and disk in two VMs at once, which then do not see each other''s writes' {
        $vms = Restore-MacVmSnapshot -SnapshotName base -Name copy -Count 2
        $vms.Name | Sort-Object | Should -Be @('copy-1', 'copy-2')
        $vms | Wait-MacVm -Condition GuestAgentReady -TimeoutSec 30
        foreach ($vm in $vms) {
            $vm.Status.RestoredFrom | Should -Be 'base'
            Invoke-Guest $vm.Name 'cat /tmp/value' | Should -Be 'memory-42'
            Invoke-Guest $vm.Name $script:ReadDisk | Should -Be 'disk-42'
        }
        Write-Disk copy-1 'changed-1'
        Invoke-Guest copy-1 $script:ReadDisk | Should -Be 'changed-1'
        Invoke-Guest copy-2 $script:ReadDisk | Should -Be 'disk-42'

        $third = Restore-MacVmSnapshot -SnapshotName base -Name copy-3 | Wait-MacVm -Condition GuestAgentReady -TimeoutSec 30 -PassThru
        Invoke-Guest $third.Name $script:ReadDisk | Should -Be 'disk-42'
        Get-MacVm copy-* | Remove-MacVm -Force
    }

    It 'gives each restored VM a small copy-on-write layer, not a copy' {
        $vm = Restore-MacVmSnapshot -SnapshotName base -Name thin
        (Get-Item (Join-Path $vm.Path 'disk.qcow2')).Length | Should -BeLessThan 2MB
        Remove-MacVm thin -Force
    }

    It 'sets the guest clock to the host time' {
        Start-Sleep -Seconds 3   # the saved clock is now at least 3 s behind
        $vm = Restore-MacVmSnapshot -SnapshotName base -Name clock | Wait-MacVm -Condition GuestAgentReady -TimeoutSec 30 -PassThru
        $guest = [long](Invoke-Guest clock 'date +%s')
        $hostNow = [DateTimeOffset]::UtcNow.ToUnixTimeSeconds()
        [Math]::Abs($hostNow - $guest) | Should -BeLessOrEqual 2
        Remove-MacVm clock -Force
    }

    It 'refuses to remove a snapshot that restored VMs are built on' {
        $null = Restore-MacVmSnapshot -SnapshotName base -Name user
        { Remove-MacVmSnapshot base -Force -ErrorAction Stop } |
            Should -Throw -ErrorId 'RemoveMacVmSnapshotSnapshotInUse,MacVm.Cmdlets.Commands.RemoveMacVmSnapshotCommand' -ExpectedMessage "*'user'*"
        Remove-MacVm user -Force
    }
}

Describe 'Damaged snapshots' {
    BeforeAll {
        $null = Save-MacVm -Name src -SnapshotName fragile
        $script:State = Join-Path (Get-MacVmSnapshot fragile).Path 'state.bin'
        $bytes = [IO.File]::ReadAllBytes($script:State)
        $bytes[[int]($bytes.Length / 2)] = $bytes[[int]($bytes.Length / 2)] -bxor 0xFF
        [IO.File]::WriteAllBytes($script:State, $bytes)
    }

    It 'catches an altered state file by its checksum and fails with -NoFallback, leaving no VM' {
        { Restore-MacVmSnapshot -SnapshotName fragile -Name strict -NoFallback -ErrorAction Stop } |
            Should -Throw -ErrorId 'RestoreMacVmSnapshotSnapshotDamaged,MacVm.Cmdlets.Commands.RestoreMacVmSnapshotCommand' -ExpectedMessage '*state.bin*checksum*'
        Get-MacVm strict -ErrorAction Ignore | Should -BeNullOrEmpty
    }

    It 'falls back to a cold boot of the saved disk, with a warning' {
        $vm = Restore-MacVmSnapshot -SnapshotName fragile -Name lenient -WarningVariable warnings -WarningAction SilentlyContinue
        $warnings | Should -Not -BeNullOrEmpty
        "$warnings" | Should -BeLike '*checksum*Cold-booting*'
        $vm.Status.RestoredFrom | Should -BeNullOrEmpty
        $vm | Wait-MacVm -Condition GuestAgentReady -TimeoutSec 60
        Invoke-Guest lenient 'cat /tmp/value 2>/dev/null || echo none' | Should -Be 'none' -Because 'memory is not restored by a cold boot'
        Invoke-Guest lenient $script:ReadDisk | Should -Be 'disk-42' -Because 'the saved disk is'
        Remove-MacVm lenient -Force
    }

    It 'catches a truncated state file' {
        $stream = [IO.File]::Open($script:State, 'Open', 'ReadWrite')
        try { $stream.SetLength(1000) } finally { $stream.Dispose() }
        { Restore-MacVmSnapshot -SnapshotName fragile -Name strict2 -NoFallback -ErrorAction Stop } |
            Should -Throw -ExpectedMessage '*has 1000 bytes*'
    }
}

Describe 'Snapshots are files' {
    It 'are listed by a new pwsh session' {
        $pwsh = Join-Path $PSHOME 'pwsh'
        $listed = & $pwsh -NoProfile -NonInteractive -Command "Import-Module '$env:MACVM_MODULE'; (Get-MacVmSnapshot -Name base).Files | Where-Object Role -eq state | ForEach-Object Sha256"
        $listed | Should -Be ($script:Saved.Files | Where-Object Role -eq state).Sha256
        Get-MacVmSnapshot -VM src | Select-Object -ExpandProperty Name | Should -Contain 'base'
    }
}
