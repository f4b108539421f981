#Requires -Modules @{ ModuleName = 'Pester'; ModuleVersion = '5.7.1' }
# The cold-boot life cycle of real VMs (QEMU, the test guest): create, inspect, ping, stop, start,
# remove; VMs outliving their pwsh; crashes of the host and of QEMU.

BeforeAll {
    Import-Module $env:MACVM_MODULE -Force
    Import-Module "$PSScriptRoot/TestSupport.psm1" -Force
    $script:Store = New-TestStore
    $null = Import-TestGuest -Name tiny
    $script:Pwsh = Join-Path $PSHOME 'pwsh'
}

AfterAll {
    Remove-TestStore -Store $script:Store
}

Describe 'Two VMs at once' {
    It 'creates both in parallel, shows them Running, pings their guests, stops and removes them' {
        $module = $env:MACVM_MODULE
        $vms = 'web1', 'web2' | ForEach-Object -ThrottleLimit 2 -Parallel {
            Import-Module $using:module
            New-MacVm -Name $_ -Image tiny
        }
        $vms.Name | Sort-Object | Should -Be @('web1', 'web2')

        $listed = Get-MacVm -Name web*
        $listed.State | Should -Be @('Running', 'Running')
        $listed | ForEach-Object { $_.HostProcessId | Should -Not -BeNullOrEmpty; Test-ProcessAlive $_.HypervisorProcessId | Should -BeTrue }

        $pings = $listed | Wait-MacVm -Condition GuestAgentReady -TimeoutSec 30 -PassThru | Test-MacVmGuest
        $pings.VMName | Sort-Object | Should -Be @('web1', 'web2')
        $pings | ForEach-Object { $_.RoundTripMs | Should -BeGreaterThan 0 }

        $stopped = Get-MacVm web* | Stop-MacVm -PassThru
        $stopped.State | Should -Be @('Stopped', 'Stopped')
        $listed | ForEach-Object { Wait-Until { -not (Test-ProcessAlive $_.HypervisorProcessId) } | Should -BeTrue }

        Remove-MacVm -Name web* -Confirm:$false
        Get-MacVm | Should -BeNullOrEmpty
        Get-ChildItem -Force "$script:Store/vms" | Should -BeNullOrEmpty
    }
}

Describe 'A VM outlives the pwsh that made it' {
    It 'is still Running and usable from another pwsh after its creator exited' {
        & $script:Pwsh -NoProfile -NonInteractive -Command "Import-Module '$env:MACVM_MODULE'; `$null = New-MacVm -Name detached -Image tiny" | Out-Null
        $LASTEXITCODE | Should -Be 0

        $answer = & $script:Pwsh -NoProfile -NonInteractive -Command @"
Import-Module '$env:MACVM_MODULE'
`$vm = Get-MacVm detached | Wait-MacVm -Condition GuestAgentReady -TimeoutSec 30 -PassThru
`$ping = `$vm | Test-MacVmGuest
"`$(`$vm.State) `$(`$ping.RoundTripMs -gt 0)"
"@
        $answer | Should -Be 'Running True'

        # The host is not a child of the pwsh that started it: it was re-parented when that pwsh exited.
        $hostPid = (Get-MacVm detached).HostProcessId
        (Get-Content "/proc/$hostPid/stat").Split(' ')[3] | Should -Not -Be "$PID"
        Remove-MacVm detached -Force -Confirm:$false
        Test-ProcessAlive $hostPid | Should -BeFalse
    }
}

Describe 'Stop and start' {
    BeforeAll { $script:vm = New-MacVm -Name cycle -Image tiny }
    AfterAll { Remove-MacVm cycle -Force -Confirm:$false -ErrorAction Ignore }

    It 'stops gracefully through the guest, keeping the host log and the console log' {
        $script:vm | Wait-MacVm -Condition GuestAgentReady -TimeoutSec 30
        $console = "$($script:vm.Path)/console.log"
        Wait-Until { (Get-Content -Raw $console) -match 'MACVM-GUEST-READY' } | Should -BeTrue -Because 'the serial console is captured'
        $stopped = Stop-MacVm cycle -PassThru
        $stopped.State | Should -Be 'Stopped'
        $stopped.StateReason | Should -Match 'Stop-MacVm'
        Test-ProcessAlive $script:vm.HostProcessId | Should -BeFalse
        Get-Content $console -Raw | Should -Match 'reboot: Power down' -Because 'the guest shut itself down'
        Get-Content "$($script:vm.Path)/host.log" -Raw | Should -Match 'Final state Stopped'
    }

    It 'starts again on the same disk and the guest answers' {
        $started = Start-MacVm cycle -PassThru
        $started.State | Should -Be 'Running'
        $started.HostProcessId | Should -Not -Be $script:vm.HostProcessId
        (Wait-MacVm cycle -Condition GuestAgentReady -TimeoutSec 30 -PassThru | Test-MacVmGuest).RoundTripMs | Should -BeGreaterThan 0
    }

    It 'starting a running VM changes nothing' {
        $before = Get-MacVm cycle
        Start-MacVm cycle
        (Get-MacVm cycle).HostProcessId | Should -Be $before.HostProcessId
    }

    It 'pauses and resumes the guest' {
        (Suspend-MacVm cycle -PassThru).State | Should -Be 'Paused'
        (Get-MacVm cycle).State | Should -Be 'Paused'
        { Test-MacVmGuest cycle -TimeoutSec 1 -ErrorAction Stop } | Should -Throw -ErrorId 'TestMacVmGuestInvalidState,MacVm.Cmdlets.Commands.TestMacVmGuestCommand'
        (Resume-MacVm cycle -PassThru).State | Should -Be 'Running'
        (Test-MacVmGuest cycle).RoundTripMs | Should -BeGreaterThan 0
    }

    It 'kills at once with -Force' {
        $running = Get-MacVm cycle
        $sw = [Diagnostics.Stopwatch]::StartNew()
        (Stop-MacVm cycle -Force -PassThru).StateReason | Should -Match 'force'
        Test-ProcessAlive $running.HypervisorProcessId | Should -BeFalse
    }

    It 'supports -WhatIf without touching the VM' {
        Start-MacVm cycle -WhatIf
        (Get-MacVm cycle).State | Should -Be 'Stopped'
        Remove-MacVm cycle -WhatIf
        Get-MacVm cycle | Should -Not -BeNullOrEmpty
    }
}

Describe 'Files on disk' {
    It 'keeps the VM folder private to its owner and the control socket 0600' {
        $vm = New-MacVm -Name private -Image tiny
        [int](Get-Item $vm.Path).UnixFileMode | Should -Be 0x1C0 -Because 'the folder is 0700'
        [int](Get-Item "$($vm.Path)/control.sock" -Force).UnixFileMode | Should -Be 0x180 -Because 'the socket is 0600'
        Get-Content "$($vm.Path)/host.pid" | Should -Be "$($vm.HostProcessId)"
        (Get-Content -Raw "$($vm.Path)/vm.json" | ConvertFrom-Json).name | Should -Be 'private'
        Remove-MacVm private -Force
    }
}

Describe 'Disk clones' {
    It 'gives each VM a copy-on-write overlay on the image, not a copy' {
        $vm = New-MacVm -Name overlay -Image tiny -NoStart
        $vm.State | Should -Be 'Stopped'
        $disk = Join-Path $vm.Path 'disk.qcow2'
        (Get-Item $disk).Length | Should -BeLessThan 1MB
        $info = qemu-img info --output=json $disk | ConvertFrom-Json
        $info.'backing-filename' | Should -Be (Join-Path $script:Store 'images/tiny/disk.qcow2')
        Remove-MacVm overlay -Confirm:$false
    }
}

Describe 'Crashes' {
    It 'shows a VM whose host was killed as Failed, takes QEMU down with it, and removes it cleanly' {
        $vm = New-MacVm -Name crashhost -Image tiny
        Stop-Process -Id $vm.HostProcessId -Force
        Wait-Until { -not (Test-ProcessAlive $vm.HypervisorProcessId) } -TimeoutSec 5 | Should -BeTrue -Because 'QEMU dies with its host (parent-death signal)'
        $failed = Get-MacVm crashhost
        $failed.State | Should -Be 'Failed'
        $failed.StateReason | Should -Match 'host process .* is gone'
        Remove-MacVm crashhost -Confirm:$false
        Get-MacVm crashhost -ErrorAction Ignore | Should -BeNullOrEmpty
        Test-Path $vm.Path | Should -BeFalse
    }

    It 'shows a VM whose QEMU was killed as Failed with the reason, and its host exits' {
        $vm = New-MacVm -Name crashqemu -Image tiny
        Stop-Process -Id $vm.HypervisorProcessId -Force
        $failed = Wait-MacVm crashqemu -State Failed -TimeoutSec 10 -PassThru
        $failed.StateReason | Should -Match 'killed by signal 9'
        Wait-Until { -not (Test-ProcessAlive $vm.HostProcessId) } -TimeoutSec 5 | Should -BeTrue
        (Get-MacVm crashqemu).State | Should -Be 'Failed'
        Remove-MacVm crashqemu -Confirm:$false
        Test-Path $vm.Path | Should -BeFalse
    }
}

Describe 'Conveniences' {
    It 'works from thread jobs (the engine is shared by runspaces on many threads)' {
        $module = $env:MACVM_MODULE
        $jobs = 1..3 | ForEach-Object {
            Start-ThreadJob -ArgumentList $_ { param($n) Import-Module $using:module; New-MacVm -Name "job$n" -Image tiny -NoStart }
        }
        $made = $jobs | Receive-Job -Wait -AutoRemoveJob -ErrorAction Stop
        $made.Name | Sort-Object | Should -Be @('job1', 'job2', 'job3')
        (Get-MacVm job*).Count | Should -Be 3
        Remove-MacVm job* -Confirm:$false
    }

    It 'completes VM and image names' {
        $null = New-MacVm -Name complete-me -Image tiny -NoStart
        $vmNames = (TabExpansion2 -inputScript 'Start-MacVm -Name compl' -cursorColumn 23).CompletionMatches.CompletionText
        $vmNames | Should -Contain 'complete-me'
        $imageNames = (TabExpansion2 -inputScript 'New-MacVm -Name x -Image ti' -cursorColumn 26).CompletionMatches.CompletionText
        $imageNames | Should -Contain 'tiny'
        Remove-MacVm complete-me -Confirm:$false
    }

    It 'formats VMs as a table by default' {
        $null = New-MacVm -Name shown -Image tiny -NoStart
        $text = Get-MacVm shown | Out-String
        $text | Should -Match 'Name\s+State\s+Image'
        $text | Should -Match 'shown\s+Stopped\s+tiny'
        Remove-MacVm shown -Confirm:$false
    }

    It 'times out waiting for a condition that does not come, with a clear error' {
        $null = New-MacVm -Name waiter -Image tiny -NoStart
        { Wait-MacVm waiter -State Running -TimeoutSec 1 -ErrorAction Stop } | Should -Throw -ErrorId 'WaitMacVmTimeout,MacVm.Cmdlets.Commands.WaitMacVmCommand'
        { Wait-MacVm waiter -Condition GuestAgentReady -TimeoutSec 1 -ErrorAction Stop } | Should -Throw '*is Stopped*'
        Remove-MacVm waiter -Confirm:$false
    }
}
