#Requires -Modules @{ ModuleName = 'Pester'; ModuleVersion = '5.7.1' }
# Screenshots of real VMs: Get-MacVmScreenshot (thumbnail, full, PNG, files, paused VMs, the pipeline) and the
# token-guarded HTTP endpoint. Pictures are decoded by tests/ImageProbe ($env:MACVM_IMAGE_PROBE), a test tool
# on SkiaSharp, and their sizes are also read from their PNG/JPEG headers here, independently of any library.

BeforeAll {
    Import-Module $env:MACVM_MODULE -Force
    Import-Module "$PSScriptRoot/TestSupport.psm1" -Force
    if (-not $env:MACVM_IMAGE_PROBE -or -not (Test-Path $env:MACVM_IMAGE_PROBE)) {
        throw "Set `$env:MACVM_IMAGE_PROBE to the built tests/ImageProbe (ImageProbe.dll); build.ps1 -Task Test does."
    }
    $script:Store = New-TestStore
    $script:Scratch = Join-Path $script:Store 'pictures'
    $null = New-Item -ItemType Directory $script:Scratch
    $null = Import-TestGuest -Name tiny

    # What ImageProbe sees in a picture (a file, or bytes written to a file first).
    function Get-Picture {
        param([string] $Path, [byte[]] $Data)
        if ($Data) {
            $Path = Join-Path $script:Scratch ([IO.Path]::GetRandomFileName())
            [IO.File]::WriteAllBytes($Path, $Data)
        }
        $json = & dotnet $env:MACVM_IMAGE_PROBE $Path
        $json | ConvertFrom-Json
    }

    # Format and size from the file's own header: PNG IHDR, or the JPEG frame header (SOFn).
    function Get-HeaderSize([byte[]] $b) {
        if ($b.Length -ge 24 -and $b[0] -eq 0x89 -and [Text.Encoding]::ASCII.GetString($b, 1, 3) -eq 'PNG') {
            $be32 = { param($o) (([long]$b[$o] -shl 24) -bor ($b[$o + 1] -shl 16) -bor ($b[$o + 2] -shl 8) -bor $b[$o + 3]) }
            return [pscustomobject]@{ Format = 'Png'; Width = & $be32 16; Height = & $be32 20 }
        }
        if ($b[0] -eq 0xFF -and $b[1] -eq 0xD8) {
            $i = 2
            while ($i + 9 -lt $b.Length) {
                $marker = $b[$i + 1]
                if ($marker -ge 0xC0 -and $marker -le 0xCF -and $marker -notin 0xC4, 0xC8, 0xCC) {
                    return [pscustomobject]@{ Format = 'Jpeg'; Width = $b[$i + 7] * 256 + $b[$i + 8]; Height = $b[$i + 5] * 256 + $b[$i + 6] }
                }
                $i += 2 + $b[$i + 2] * 256 + $b[$i + 3]
            }
        }
        throw 'neither a PNG nor a JPEG'
    }

    # The agent answers while the guest still loads its DRM modules (the display is then in 720x400 text mode);
    # the guest draws its marker on the 1280x800 framebuffer console, then prints its ready line on the serial console.
    function Wait-GuestScreen([string] $Name) {
        $vm = Get-MacVm -Name $Name
        $drawn = Wait-Until -TimeoutSec 60 { Select-String -Quiet -SimpleMatch 'MACVM-GUEST-READY' -Path (Join-Path $vm.Path 'console.log') }
        if (-not $drawn) { throw "VM '$Name' did not print its ready line." }
        Get-MacVm -Name $Name
    }

    $null = New-MacVm -Name shot1 -Image tiny -ScreenshotPort 0 | Wait-MacVm -Condition GuestAgentReady -TimeoutSec 60
    $script:Vm = Wait-GuestScreen shot1
    $script:Display = Get-Picture -Data (Get-MacVmScreenshot -Name shot1 -Full -Format Png -ErrorAction Stop).Data
}

AfterAll {
    Remove-TestStore -Store $script:Store
}

Describe 'Get-MacVmScreenshot' {
    It 'gives a JPEG thumbnail 800 px wide with the display''s aspect ratio by default' {
        $shot = Get-MacVmScreenshot -Name shot1 -ErrorAction Stop
        $shot.VMName | Should -Be 'shot1'
        $shot.Format | Should -Be 'Jpeg'
        $shot.Quality | Should -Be 60
        $shot.Full | Should -BeFalse
        $shot.Width | Should -Be 800
        $shot.Height | Should -Be ([math]::Round(800 * $script:Display.height / $script:Display.width))
        ($shot.DisplayWidth, $shot.DisplayHeight) | Should -Be @($script:Display.width, $script:Display.height)
        $shot.SizeBytes | Should -Be $shot.Data.Length
        $shot.TakenUtc | Should -BeGreaterThan ([DateTimeOffset]::UtcNow.AddMinutes(-1))
        $header = Get-HeaderSize $shot.Data
        ($header.Format, $header.Width, $header.Height) | Should -Be @('Jpeg', 800, $shot.Height)
        $decoded = Get-Picture -Data $shot.Data
        ($decoded.format, $decoded.width, $decoded.height) | Should -Be @('Jpeg', 800, $shot.Height)
    }

    It 'gives the whole display with -Full, as JPEG (quality 85) and as PNG' {
        $script:Display.format | Should -Be 'Png'
        ($script:Display.width, $script:Display.height) | Should -Be @(1280, 800) -Because 'the bochs framebuffer console of the test guest is 1280x800'
        $jpeg = Get-MacVmScreenshot -Name shot1 -Full -ErrorAction Stop
        ($jpeg.Format, $jpeg.Quality, $jpeg.Width, $jpeg.Height) | Should -Be @('Jpeg', 85, 1280, 800)
        $decoded = Get-Picture -Data $jpeg.Data
        ($decoded.format, $decoded.width, $decoded.height) | Should -Be @('Jpeg', 1280, 800)
        $png = Get-MacVmScreenshot -Name shot1 -Full -Format Png -ErrorAction Stop
        ($png.Quality, (Get-HeaderSize $png.Data).Format) | Should -Be @($null, 'Png')
    }

    It 'shows the guest''s console: not blank, with the marker''s blue bar' {
        $script:Display.distinctColors | Should -BeGreaterThan 2 -Because 'a blank screen has one colour'
        $script:Display.darkFraction | Should -BeLessThan 1.0
        $script:Display.markerBluePixels | Should -BeGreaterThan 1000 -Because 'the guest draws "MACVM TEST GUEST" on a blue bar'
        (Get-Picture -Data (Get-MacVmScreenshot -Name shot1).Data).markerBluePixels | Should -BeGreaterThan 100
    }

    It 'changes after the guest prints something new, and not before' {
        $before = (Get-MacVmScreenshot -Name shot1 -Full -Format Png -ErrorAction Stop).Data
        $again = (Get-MacVmScreenshot -Name shot1 -Full -Format Png -ErrorAction Stop).Data
        [Convert]::ToBase64String($again) | Should -Be ([Convert]::ToBase64String($before)) -Because 'nothing changed on the screen'
        $r = Invoke-MacVmGuestCommand -Name shot1 -ScriptText 'printf "\n\n    SCREENSHOT TEST LINE %s\n" $$ >/dev/tty0' -ErrorAction Stop
        $r.ExitCode | Should -Be 0
        $changed = Wait-Until -TimeoutSec 10 { [Convert]::ToBase64String((Get-MacVmScreenshot -Name shot1 -Full -Format Png).Data) -ne [Convert]::ToBase64String($before) }
        $changed | Should -BeTrue
        $after = Get-Picture -Data (Get-MacVmScreenshot -Name shot1 -Full -Format Png).Data
        $after.darkFraction | Should -BeLessThan $script:Display.darkFraction -Because 'the new line lit more pixels'
    }

    It 'works on a paused VM' {
        Suspend-MacVm -Name shot1
        try {
            (Get-MacVm shot1).State | Should -Be 'Paused'
            $shot = Get-MacVmScreenshot -Name shot1 -ErrorAction Stop
            $shot.Width | Should -Be 800
            (Get-Picture -Data $shot.Data).markerBluePixels | Should -BeGreaterThan 100
        }
        finally { Resume-MacVm -Name shot1 }
    }

    It 'serves several captures of one VM at once, from the cmdlet and the endpoint together' {
        $module = $env:MACVM_MODULE
        $url = $script:Vm.ScreenshotUrl
        $token = $script:Vm.GetScreenshotToken()
        $widths = 1..6 | ForEach-Object -ThrottleLimit 6 -Parallel {
            if ($_ % 2) {
                Import-Module $using:module
                (Get-MacVmScreenshot -Name shot1 -ErrorAction Stop).Width
            }
            else {
                $r = Invoke-WebRequest -Uri $using:url -Headers @{ Authorization = "Bearer $using:token" } -NoProxy
                if ($r.StatusCode -eq 200 -and $r.Content.Length -gt 100) { 800 } else { $r.StatusCode }
            }
        }
        $widths | Should -Be @(800, 800, 800, 800, 800, 800)
        Get-ChildItem -Force $script:Vm.Path -Filter '.screendump-*' | Should -BeNullOrEmpty -Because 'each capture deletes its screendump'
    }

    It 'writes -Path atomically, relative to the current location, and the extension .png makes a PNG' {
        Push-Location $script:Scratch
        try {
            $shot = Get-MacVmScreenshot -Name shot1 -Full -Path 'rel.png' -ErrorAction Stop
        }
        finally { Pop-Location }
        $shot.Path | Should -Be (Join-Path $script:Scratch 'rel.png')
        $shot.Data | Should -BeNullOrEmpty
        $shot.Format | Should -Be 'Png'
        $file = Get-Picture -Path $shot.Path
        ($file.format, $file.width, $file.height) | Should -Be @('Png', 1280, 800)
        (Get-Item $shot.Path).Length | Should -Be $shot.SizeBytes
        Get-ChildItem -Force $script:Scratch -Filter '*.tmp-*' | Should -BeNullOrEmpty
    }

    It 'takes many VMs from the pipeline, one file each in a -Path folder, running or paused' {
        $null = New-MacVm -Name shot2 -Image tiny | Wait-MacVm -Condition GuestAgentReady -TimeoutSec 60
        $null = Wait-GuestScreen shot2
        Suspend-MacVm -Name shot2
        try {
            $folder = Join-Path $script:Scratch 'many'
            $null = New-Item -ItemType Directory $folder
            $shots = Get-MacVm -Name shot* | Get-MacVmScreenshot -Path $folder -ErrorAction Stop
            $shots.VMName | Sort-Object | Should -Be @('shot1', 'shot2')
            (Get-ChildItem $folder).Name | Sort-Object | Should -Be @('shot1.jpg', 'shot2.jpg')
            foreach ($s in $shots) { (Get-Picture -Path $s.Path).width | Should -Be 800 }
            # One file for several VMs would keep only the last picture: the second VM gets an error instead.
            $one = Join-Path $script:Scratch 'one.jpg'
            $out = Get-MacVm -Name shot* | Get-MacVmScreenshot -Path $one -ErrorVariable errs -ErrorAction SilentlyContinue
            @($out).Count | Should -Be 1
            $errs[0].FullyQualifiedErrorId | Should -Be 'GetMacVmScreenshotPathReused,MacVm.Cmdlets.Commands.GetMacVmScreenshotCommand'
        }
        finally { Remove-MacVm -Name shot2 -Force -Confirm:$false }
    }

    It 'says clearly that a stopped VM has no screen, and writes no file' {
        $null = New-MacVm -Name idle -Image tiny -NoStart
        try {
            $target = Join-Path $script:Scratch 'idle.jpg'
            $out = Get-MacVmScreenshot -Name idle -Path $target -ErrorVariable errs -ErrorAction SilentlyContinue
            $out | Should -BeNullOrEmpty
            $errs[0].FullyQualifiedErrorId | Should -Be 'GetMacVmScreenshotNotRunning,MacVm.Cmdlets.Commands.GetMacVmScreenshotCommand'
            "$($errs[0])" | Should -Match "VM 'idle' is Stopped.*Start-MacVm -Name idle"
            $target | Should -Not -Exist
            Get-ChildItem -Force $script:Scratch -Filter 'idle.jpg*' | Should -BeNullOrEmpty
        }
        finally { Remove-MacVm -Name idle -Confirm:$false }
    }

    It 'refuses bad input before capturing anything' {
        { Get-MacVmScreenshot -Name shot1 -Quality 0 } | Should -Throw -ErrorId 'ParameterArgumentValidationError,MacVm.Cmdlets.Commands.GetMacVmScreenshotCommand'
        { Get-MacVmScreenshot -Name shot1 -Quality 101 } | Should -Throw -ErrorId 'ParameterArgumentValidationError,MacVm.Cmdlets.Commands.GetMacVmScreenshotCommand'
        { Get-MacVmScreenshot -Name shot1 -Path (Join-Path $script:Scratch 'no/such/folder/x.jpg') -ErrorAction Stop } |
            Should -Throw -ErrorId 'GetMacVmScreenshotFolderNotFound,MacVm.Cmdlets.Commands.GetMacVmScreenshotCommand'
        { Get-MacVmScreenshot -Name nosuchvm -ErrorAction Stop } | Should -Throw -ErrorId 'GetMacVmScreenshotNotFound,MacVm.Cmdlets.Commands.GetMacVmScreenshotCommand'
    }
}

Describe 'The screenshot endpoint' {
    BeforeAll {
        $script:Url = $script:Vm.ScreenshotUrl
        $script:Token = $script:Vm.GetScreenshotToken()
        function Invoke-Endpoint([string] $Uri, [hashtable] $Headers = @{}, [string] $Method = 'GET') {
            # -NoProxy: straight to loopback.
            Invoke-WebRequest -Uri $Uri -Headers $Headers -Method $Method -SkipHttpErrorCheck -NoProxy
        }
    }

    It 'is on the VM object, on 127.0.0.1 only' {
        $script:Vm.ScreenshotPort | Should -BeGreaterThan 0
        $script:Url | Should -Be "http://127.0.0.1:$($script:Vm.ScreenshotPort)/screenshot"
        $hexPort = '{0:X4}' -f $script:Vm.ScreenshotPort
        $listening = @((Get-Content /proc/net/tcp, /proc/net/tcp6 -ErrorAction Ignore) | Where-Object { $_ -match "^\s*\d+: ([0-9A-F]+):$hexPort [0-9A-F]+:0000 0A " } | ForEach-Object { $Matches[1] })
        $listening | Should -Be @('0100007F') -Because 'the endpoint listens on 127.0.0.1 and nowhere else'
    }

    It 'keeps its token in a file only the VM''s owner can read' {
        $script:Token | Should -Match '^[A-Za-z0-9_-]{43}$'
        (Get-Item (Join-Path $script:Vm.Path 'screenshot.token')).UnixFileMode | Should -Be ([IO.UnixFileMode]'UserRead, UserWrite')
        (Get-Item $script:Vm.Path).UnixFileMode | Should -Be ([IO.UnixFileMode]'UserRead, UserWrite, UserExecute')
    }

    It 'answers 401 without the token or with a wrong one' {
        $r = Invoke-Endpoint $script:Url
        [int]$r.StatusCode | Should -Be 401
        "$($r.Headers['WWW-Authenticate'])" | Should -Match 'Bearer'
        [int](Invoke-Endpoint $script:Url -Headers @{ Authorization = 'Bearer not-the-token' }).StatusCode | Should -Be 401
        [int](Invoke-Endpoint "$($script:Url)?token=not-the-token").StatusCode | Should -Be 401
        [int](Invoke-Endpoint "$($script:Url)?full=1").StatusCode | Should -Be 401
    }

    It 'answers a JPEG thumbnail with the token in the header, and the whole display with ?full=1 and the token in the query' {
        $r = Invoke-Endpoint $script:Url -Headers @{ Authorization = "Bearer $($script:Token)" }
        [int]$r.StatusCode | Should -Be 200
        "$($r.Headers['Content-Type'])" | Should -Be 'image/jpeg'
        $thumb = Get-Picture -Data $r.Content
        ($thumb.format, $thumb.width, $thumb.height) | Should -Be @('Jpeg', 800, 500)
        $r = Invoke-Endpoint "$($script:Url)?full=1&token=$($script:Token)"
        [int]$r.StatusCode | Should -Be 200
        $full = Get-Picture -Data $r.Content
        ($full.format, $full.width, $full.height) | Should -Be @('Jpeg', 1280, 800)
    }

    It 'answers 404 for other paths and 405 for other methods' {
        $auth = @{ Authorization = "Bearer $($script:Token)" }
        [int](Invoke-Endpoint ($script:Url -replace '/screenshot$', '/other') -Headers $auth).StatusCode | Should -Be 404
        [int](Invoke-Endpoint $script:Url -Headers $auth -Method POST).StatusCode | Should -Be 405
    }

    It 'is off unless asked for' {
        $vm = New-MacVm -Name plain -Image tiny -NoStart
        try {
            $vm.ScreenshotPort | Should -BeNullOrEmpty
            $vm.ScreenshotUrl | Should -BeNullOrEmpty
            $vm.GetScreenshotToken() | Should -BeNullOrEmpty
        }
        finally { Remove-MacVm -Name plain -Confirm:$false }
    }

    It 'refuses a port in use before making anything, and leaves no VM' {
        $taken = [Net.Sockets.TcpListener]::new([Net.IPAddress]::Loopback, 0)
        $taken.Start()
        try {
            $port = $taken.LocalEndpoint.Port
            { New-MacVm -Name busy -Image tiny -ScreenshotPort $port -ErrorAction Stop } | Should -Throw -ErrorId 'NewMacVmPortInUse,MacVm.Cmdlets.Commands.NewMacVmCommand'
            Get-MacVm -Name busy -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
            Get-ChildItem -Force (Join-Path $script:Store 'vms') | Where-Object Name -like '*busy*' | Should -BeNullOrEmpty
        }
        finally { $taken.Stop() }
        { New-MacVm -Name busy -Image tiny -ScreenshotPort 65536 } | Should -Throw -ErrorId 'ParameterArgumentValidationError,MacVm.Cmdlets.Commands.NewMacVmCommand'
    }

    It 'serves each VM restored from a snapshot on a port of its own with -ScreenshotPort 0' {
        $null = Save-MacVm -Name shot1 -SnapshotName shotsnap
        { Restore-MacVmSnapshot -SnapshotName shotsnap -Name twin -Count 2 -ScreenshotPort 40000 -ErrorAction Stop } |
            Should -Throw -ErrorId 'RestoreMacVmSnapshotInvalidArgument,MacVm.Cmdlets.Commands.RestoreMacVmSnapshotCommand'
        $twins = Restore-MacVmSnapshot -SnapshotName shotsnap -Name twin -Count 2 -ScreenshotPort 0 -ErrorAction Stop
        try {
            $twins.Name | Sort-Object | Should -Be @('twin-1', 'twin-2')
            $ports = $twins.ScreenshotPort
            $ports | Should -Not -Contain $null
            ($ports | Select-Object -Unique).Count | Should -Be 2
            $ports | Should -Not -Contain $script:Vm.ScreenshotPort
            foreach ($t in $twins) {
                $token = $t.GetScreenshotToken()
                $token | Should -Not -Be $script:Token -Because 'each VM has its own token'
                $r = Invoke-Endpoint $t.ScreenshotUrl -Headers @{ Authorization = "Bearer $token" }
                [int]$r.StatusCode | Should -Be 200
                (Get-Picture -Data $r.Content).markerBluePixels | Should -BeGreaterThan 100
                # Another VM's token does not open this one.
                [int](Invoke-Endpoint $t.ScreenshotUrl -Headers @{ Authorization = "Bearer $($script:Token)" }).StatusCode | Should -Be 401
            }
            # Without -ScreenshotPort a restored VM has no endpoint, whatever the saved VM had.
            $plain = Restore-MacVmSnapshot -SnapshotName shotsnap -Name plain2 -ErrorAction Stop
            $plain.ScreenshotPort | Should -BeNullOrEmpty
        }
        finally {
            Get-MacVm -Name twin-*, plain2 -ErrorAction Ignore | Remove-MacVm -Force -Confirm:$false
            Remove-MacVmSnapshot -Name shotsnap -Force -Confirm:$false
        }
    }

    It 'closes with the VM, and a new start brings a new token' {
        $old = $script:Token
        $null = Stop-MacVm -Name shot1 -Force
        (Get-MacVm shot1).ScreenshotUrl | Should -BeNullOrEmpty
        Join-Path $script:Vm.Path 'screenshot.token' | Should -Not -Exist
        { $null = Invoke-WebRequest -Uri $script:Url -NoProxy -TimeoutSec 5 } | Should -Throw
        $vm = Start-MacVm -Name shot1 -PassThru
        $vm.ScreenshotPort | Should -BeGreaterThan 0
        $r = Invoke-Endpoint $vm.ScreenshotUrl -Headers @{ Authorization = "Bearer $old" }
        [int]$r.StatusCode | Should -Be 401 -Because 'the old token no longer opens it'
        $r = Invoke-Endpoint $vm.ScreenshotUrl -Headers @{ Authorization = "Bearer $($vm.GetScreenshotToken())" }
        [int]$r.StatusCode | Should -Be 200
        $vm.GetScreenshotToken() | Should -Not -Be $old
    }
}
