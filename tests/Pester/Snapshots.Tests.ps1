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
        $script:Saved.Files.Role | Sort-Object | Should -Be @('disk', 'memory', 'state')
        foreach ($f in $script:Saved.Files) {
            $path = Join-Path $script:Saved.Path $f.Name
            (Get-Item $path).Length | Should -Be $f.SizeBytes
            Get-SnapshotFileChecksum $path | Should -Be $f.Checksum
        }
        # The memory image is the guest's RAM byte for byte, sparse: the guest's free pages cost no disk.
        $memory = $script:Saved.Files | Where-Object Role -eq memory
        $memory.SizeBytes | Should -Be ($script:Saved.MemoryMB * 1MB)
        [long](& du -B1 (Join-Path $script:Saved.Path $memory.Name)).Split("`t")[0] | Should -BeLessThan ($script:Saved.MemoryMB * 1MB)
        # Without the memory in it, the state is the devices only.
        ($script:Saved.Files | Where-Object Role -eq state).SizeBytes | Should -BeLessThan 4MB
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

    It 'runs no script in a restored guest before its clock is set' {
        Start-Sleep -Seconds 3   # the saved clock is now at least 3 s behind
        $null = Restore-MacVmSnapshot -SnapshotName base -Name clock2
        # At once, without waiting for the agent: the host holds the script until the clock is set.
        $guest = [long](Invoke-MacVmGuestCommand -Name clock2 -ScriptText 'date +%s' -ErrorAction Stop).Output.Trim()
        $hostNow = [DateTimeOffset]::UtcNow.ToUnixTimeSeconds()
        [Math]::Abs($hostNow - $guest) | Should -BeLessOrEqual 2
        Remove-MacVm clock2 -Force
    }

    It 'replaces an existing VM of the same name with -Force' {
        $old = New-MacVm -Name target -Image tiny
        $new = Restore-MacVmSnapshot -SnapshotName base -Name target -Force
        $new.HostProcessId | Should -Not -Be $old.HostProcessId
        $new.Status.RestoredFrom | Should -Be 'base'
        Test-ProcessAlive $old.HypervisorProcessId | Should -BeFalse
        Remove-MacVm target -Force
    }

    It 'saves a restored VM again, memory streamed into the state, and restores that snapshot' {
        $vm = Restore-MacVmSnapshot -SnapshotName base -Name second | Wait-MacVm -Condition GuestAgentReady -TimeoutSec 60 -PassThru
        $null = Invoke-Guest second 'echo memory-43 > /tmp/value'
        # This VM maps the snapshot's memory image privately: there is no shared file to copy, so QEMU
        # streams the memory, and the new snapshot has no memory image.
        $again = Save-MacVm -Name second -SnapshotName base-again -PassThru
        $again.Files.Role | Sort-Object | Should -Be @('disk', 'state')
        ($again.Files | Where-Object Role -eq state).SizeBytes | Should -BeGreaterThan 16MB
        $third = Restore-MacVmSnapshot -SnapshotName base-again -Name third -NoFallback | Wait-MacVm -Condition GuestAgentReady -TimeoutSec 60 -PassThru
        $third.Status.RestoredFrom | Should -Be 'base-again'
        Invoke-Guest third 'cat /tmp/value' | Should -Be 'memory-43'
        # Restored from a streamed state, it has memory of its own again: its snapshot has an image.
        (Save-MacVm -Name third -SnapshotName base-third -PassThru).Files.Role | Should -Contain 'memory'
        Remove-MacVm second, third -Force
        Remove-MacVmSnapshot base-again, base-third -Force
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

    It 'catches an altered page of the memory image, which restores map without reading' {
        $null = Save-MacVm -Name src -SnapshotName fragile-memory
        $image = Join-Path (Get-MacVmSnapshot fragile-memory).Path 'memory.bin'
        # One byte in the middle of the image, written in place: same size, same file.
        $stream = [IO.File]::Open($image, 'Open', 'ReadWrite')
        try {
            $stream.Position = $stream.Length / 2
            $old = $stream.ReadByte()
            $stream.Position = $stream.Length / 2
            $stream.WriteByte($old -bxor 0xFF)
        }
        finally { $stream.Dispose() }
        { Restore-MacVmSnapshot -SnapshotName fragile-memory -Name strict3 -NoFallback -ErrorAction Stop } |
            Should -Throw -ErrorId 'RestoreMacVmSnapshotSnapshotDamaged,MacVm.Cmdlets.Commands.RestoreMacVmSnapshotCommand' -ExpectedMessage '*memory.bin*checksum*'
        Get-MacVm strict3 -ErrorAction Ignore | Should -BeNullOrEmpty
        Remove-MacVmSnapshot fragile-memory -Force
    }
}

Describe 'Missing snapshots' {
    It 'are a non-terminating ObjectNotFound error per name, for Get and Remove alike' {
        $found = Get-MacVmSnapshot -Name nosuch, base -ErrorVariable errs -ErrorAction SilentlyContinue
        $found.Name | Should -Be 'base'
        $errs[0].FullyQualifiedErrorId | Should -Be 'GetMacVmSnapshotSnapshotNotFound,MacVm.Cmdlets.Commands.GetMacVmSnapshotCommand'
        $errs[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        Remove-MacVmSnapshot -Name nosuch -Force -ErrorVariable rerrs -ErrorAction SilentlyContinue
        $rerrs[0].FullyQualifiedErrorId | Should -Be 'RemoveMacVmSnapshotSnapshotNotFound,MacVm.Cmdlets.Commands.RemoveMacVmSnapshotCommand'
        $rerrs[0].Exception.Message | Should -BeLike "*No snapshot named 'nosuch'*Get-MacVmSnapshot*"
    }
}

Describe 'Snapshots are files' {
    It 'are listed by a new pwsh session' {
        $pwsh = Join-Path $PSHOME 'pwsh'
        $listed = & $pwsh -NoProfile -NonInteractive -Command "Import-Module '$env:MACVM_MODULE'; (Get-MacVmSnapshot -Name base).Files | Where-Object Role -eq state | ForEach-Object Checksum"
        $listed | Should -Be ($script:Saved.Files | Where-Object Role -eq state).Checksum
        Get-MacVmSnapshot -VM src | Select-Object -ExpandProperty Name | Should -Contain 'base'
    }
}

Describe 'The snapshot cache (Use-MacVmSnapshot)' {
    BeforeAll {
        $script:Marks = Join-Path $script:Store 'prepared.txt'
        $script:Pwsh = Join-Path $PSHOME 'pwsh'
        # A child pwsh that asks the cache for (tiny, $Version), noting each preparation in the marks file.
        function Start-CacheUser([int] $Version, [int] $SleepSec = 1) {
            $code = @"
`$ProgressPreference = 'SilentlyContinue'
Import-Module '$env:MACVM_MODULE'
`$s = Use-MacVmSnapshot -Image tiny -CodeVersion $Version -Prepare { param(`$vm) Add-Content '$script:Marks' "`$PID `$(`$vm.Name)"; Start-Sleep $SleepSec }
`$s.Name
"@
            $encoded = [Convert]::ToBase64String([Text.Encoding]::Unicode.GetBytes($code))
            Start-Process -PassThru -FilePath $script:Pwsh -ArgumentList '-NoProfile', '-NonInteractive', '-EncodedCommand', $encoded `
                -RedirectStandardOutput (Join-Path $script:Store "out-$([guid]::NewGuid()).txt")
        }
    }

    It 'prepares a key once when two processes ask for it at the same time' {
        Remove-Item $script:Marks -ErrorAction Ignore
        $a = Start-CacheUser -Version 7
        $b = Start-CacheUser -Version 7
        $a, $b | Wait-Process -Timeout 120
        @(Get-Content $script:Marks).Count | Should -Be 1 -Because 'exactly one process prepares the snapshot'
        $key = 'snap-' + (Get-MacVmImage tiny).ShortDigest + '-v7'
        $outputs = Get-ChildItem $script:Store -Filter 'out-*.txt' | ForEach-Object { (Get-Content $_).Trim() }
        $outputs | Should -Be @($key, $key)
        Get-MacVmSnapshot $key | Should -Not -BeNullOrEmpty
        Get-MacVm "prep-*" | Should -BeNullOrEmpty -Because 'the preparation VM is removed'
    }

    It 'leaves no snapshot when the preparer is killed, and the next caller prepares again' {
        Remove-Item $script:Marks -ErrorAction Ignore
        $victim = Start-CacheUser -Version 8 -SleepSec 300
        Wait-Until { Test-Path $script:Marks } -TimeoutSec 60 | Should -BeTrue
        Stop-Process -Id $victim.Id -Force
        $key = 'snap-' + (Get-MacVmImage tiny).ShortDigest + '-v8'
        Get-MacVmSnapshot $key -ErrorAction Ignore | Should -BeNullOrEmpty

        $snapshot = Use-MacVmSnapshot -Image tiny -CodeVersion 8 -Prepare { param($vm) Add-Content $script:Marks "again $($vm.Name)" }
        $snapshot.Name | Should -Be $key
        @(Get-Content $script:Marks).Count | Should -Be 2
        Get-MacVm "prep-*" | Should -BeNullOrEmpty -Because 'the killed preparation''s VM was cleaned up'
    }

    It 'saves nothing when -Prepare throws, and prunes older versions' {
        { Use-MacVmSnapshot -Image tiny -CodeVersion 9 -Prepare { throw 'broken setup' } -ErrorAction Stop } |
            Should -Throw -ErrorId 'UseMacVmSnapshotPrepareFailed,MacVm.Cmdlets.Commands.UseMacVmSnapshotCommand' -ExpectedMessage '*broken setup*'
        $prefix = 'snap-' + (Get-MacVmImage tiny).ShortDigest
        Get-MacVmSnapshot "$prefix-v9" -ErrorAction Ignore | Should -BeNullOrEmpty
        Get-MacVm "prep-*" | Should -BeNullOrEmpty

        $null = Use-MacVmSnapshot -Image tiny -CodeVersion 10 -Prepare { param($vm) } -Prune
        (Get-MacVmSnapshot "$prefix-*").Name | Should -Be "$prefix-v10"
    }
}

Describe 'Faults during a save' {
    It 'gives a clear error on a full disk, keeps earlier snapshots and lists no partial one' {
        if ((id -u) -ne 0) { Set-ItResult -Skipped -Because 'mounting a small tmpfs needs root'; return }
        $mount = Join-Path $script:Store 'small'
        $null = New-Item -ItemType Directory $mount
        mount -t tmpfs -o size=170m tmpfs $mount
        $old = $env:MACVM_HOME
        try {
            $env:MACVM_HOME = $mount
            $null = Import-TestGuest -Name tiny
            $null = New-MacVm -Name full -Image tiny | Wait-MacVm -Condition GuestAgentReady -TimeoutSec 60
            $first = Save-MacVm -Name full -SnapshotName first -PassThru
            { Save-MacVm -Name full -SnapshotName second -ErrorAction Stop } |
                Should -Throw -ErrorId 'SaveMacVmSaveFailed,MacVm.Cmdlets.Commands.SaveMacVmCommand' -ExpectedMessage '*No space left on device*'
            (Get-MacVmSnapshot).Name | Should -Be 'first'
            Get-ChildItem -Force "$mount/snapshots" | Where-Object Name -like '.new-*' | Should -BeNullOrEmpty
            (Get-MacVm full).State | Should -Be 'Running' -Because 'a failed save resumes the guest'
            $null = Remove-Item "$mount/snapshots/first/state.bin"   # frees room: the VM still works afterwards
            (Test-MacVmGuest full).RoundTripMs | Should -BeGreaterThan 0
            $first.Name | Should -Be 'first'
        }
        finally {
            Get-MacVm -ErrorAction Ignore | Remove-MacVm -Force -Confirm:$false
            $env:MACVM_HOME = $old
            umount $mount
        }
    }

    It 'lists no partial snapshot when the host is killed during a save' {
        $vm = New-MacVm -Name victim -Image tiny | Wait-MacVm -Condition GuestAgentReady -TimeoutSec 60 -PassThru
        $module = $env:MACVM_MODULE
        $job = Start-ThreadJob { Import-Module $using:module; Save-MacVm -Name victim -SnapshotName torn -PassThru }
        Start-Sleep -Milliseconds 150
        Stop-Process -Id $vm.HostProcessId -Force
        $null = $job | Wait-Job -Timeout 60
        $job | Remove-Job -Force
        $snapshot = Get-MacVmSnapshot torn -ErrorAction Ignore
        if ($snapshot) {
            # The save won the race: then it must be whole.
            foreach ($f in $snapshot.Files) { Get-SnapshotFileChecksum (Join-Path $snapshot.Path $f.Name) | Should -Be $f.Checksum }
        }
        Get-ChildItem -Force "$script:Store/snapshots" | Where-Object Name -like '.new-torn*' | Should -BeNullOrEmpty
        (Get-MacVm victim).State | Should -Be 'Failed'
        Remove-MacVm victim -Confirm:$false
    }
}
