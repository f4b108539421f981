#Requires -Version 7.4
<#
.SYNOPSIS
    Writes the MAML help (MacVm.Cmdlets.dll-Help.xml) of the built MacVm module.
.DESCRIPTION
    build.ps1 runs this in a child pwsh after building the module. It imports the built module
    (-ModulePath), reads every exported cmdlet's metadata with Get-Command, and writes MAML that
    Get-Help reads, with System.Xml's XmlWriter.

    Where each part of the help comes from:
      synopsis                  the <summary> of the cmdlet class (T:<namespace>.<Class>) in -XmlDocPath
      parameter descriptions    the <summary> of the parameter's property, under the class that declares
                                it (P:<namespace>.<Class>.<Property>, so inherited parameters come from
                                the base class, e.g. P:MacVm.Cmdlets.Infrastructure.VmTargetCmdlet.Name)
      syntax, parameters        Get-Command: parameter sets, types, mandatory, position, pipeline input,
                                aliases, [SupportsWildcards], enum values, [ValidateRange]
      default values            the property values of a new instance of the cmdlet class
      inputs                    the parameters that take pipeline input
      outputs                   [OutputType], described by the type's <summary> in the XML doc next to
                                the assembly that defines it, when there is one
      description, examples,    docs/help/<Verb-Noun>.md (-DocsPath), one file per cmdlet, format below
      notes, related links

    Common parameters (-Verbose, -ErrorAction, ...) are not listed; -WhatIf and -Confirm are, like
    platyPS does, with a standard description.

    The build fails (this script throws, listing every problem) when a cmdlet has no .md file, no
    synopsis, no description or no example, when a parameter has no description, when a .md file
    belongs to no exported cmdlet, or when a .md file does not follow the format.

    FORMAT OF docs/help/<Verb-Noun>.md

        # Verb-Noun                          optional; when present it must be the cmdlet's name

        ## Description                       required: paragraphs separated by blank lines; the lines
        Text...                              of a paragraph are joined with spaces, except that a
                                             paragraph whose lines all start with '- ' keeps its lines
        ## Example 1: Title                  at least one; numbered 1, 2, 3... in order. Exactly one
        ```powershell                        fenced ```powershell block (the code, shown and run as
        Get-Foo -Name web1                   is: the Pester help tests run every example), then
        ```                                  required remarks: paragraphs that say what it does
        Remarks...

        ## Notes                             optional paragraphs (shown under NOTES)

        ## Related Links                     optional; one '- Name' or '- [Text](https://...)' a line
        - Get-MacVm

    Other '## ' headings are errors, so that a typo does not silently drop a section. Markdown inline
    syntax is kept as typed (Get-Help shows plain text): write `-Force` sparingly.
.EXAMPLE
    pwsh -NoProfile -File tools/New-MamlHelp.ps1 -ModulePath out/MacVm/MacVm.psd1 `
        -XmlDocPath src/MacVm.Cmdlets/bin/Release/net8.0/MacVm.Cmdlets.xml -OutputPath out/MacVm/en-US/MacVm.Cmdlets.dll-Help.xml
#>
[CmdletBinding()]
param(
    # The built module's manifest.
    [Parameter(Mandatory)]
    [string] $ModulePath,
    # The C# XML documentation file of the cmdlets assembly.
    [Parameter(Mandatory)]
    [string] $XmlDocPath,
    # The MAML file to write.
    [Parameter(Mandatory)]
    [string] $OutputPath,
    # The folder of the <Verb-Noun>.md files.
    [string] $DocsPath = (Join-Path $PSScriptRoot '../docs/help')
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

$NsMaml = 'http://schemas.microsoft.com/maml/2004/10'
$NsCommand = 'http://schemas.microsoft.com/maml/dev/command/2004/10'
$NsDev = 'http://schemas.microsoft.com/maml/dev/2004/10'
$NsMsHelp = 'http://msdn.microsoft.com/mshelp'

$Problems = [System.Collections.Generic.List[string]]::new()

$RiskParameterText = @{
    WhatIf  = 'Shows what would happen if the cmdlet runs. The cmdlet is not run.'
    Confirm = 'Prompts you for confirmation before running the cmdlet.'
}

#region XML documentation

function Read-XmlDoc([string] $Path) {
    $map = @{}
    if (-not (Test-Path -LiteralPath $Path)) { return $map }
    $doc = [System.Xml.XmlDocument]::new()
    $doc.Load((Resolve-Path -LiteralPath $Path).ProviderPath)
    foreach ($member in $doc.SelectNodes('/doc/members/member')) {
        $summary = $member.SelectSingleNode('summary')
        if ($summary) { $map[$member.GetAttribute('name')] = ConvertFrom-DocNode $summary }
    }
    $map
}

# The text of a <summary>: <see cref/langword>, <paramref> and <typeparamref> become their names,
# <c> and <para> their text; white space is collapsed.
function ConvertFrom-DocNode([System.Xml.XmlNode] $Node) {
    $sb = [System.Text.StringBuilder]::new()
    foreach ($child in $Node.ChildNodes) {
        switch ($child.NodeType) {
            'Text' { [void]$sb.Append($child.Value) }
            'CDATA' { [void]$sb.Append($child.Value) }
            'Whitespace' { [void]$sb.Append(' ') }
            'SignificantWhitespace' { [void]$sb.Append(' ') }
            'Element' {
                $name = $child.LocalName
                if ($name -in 'see', 'seealso') {
                    $cref = $child.GetAttribute('cref')
                    $word = $child.GetAttribute('langword')
                    if ($child.InnerText) { [void]$sb.Append($child.InnerText) }
                    elseif ($word) { [void]$sb.Append($word) }
                    elseif ($cref) { [void]$sb.Append(($cref -replace '^[A-Z]:', '' -replace '\(.*$', '').Split('.')[-1]) }
                }
                elseif ($name -in 'paramref', 'typeparamref') { [void]$sb.Append($child.GetAttribute('name')) }
                elseif ($name -eq 'para') { [void]$sb.Append(' ').Append((ConvertFrom-DocNode $child)).Append(' ') }
                else { [void]$sb.Append((ConvertFrom-DocNode $child)) }
            }
        }
    }
    ($sb.ToString() -replace '\s+', ' ').Trim()
}

function Get-DocMemberId([type] $Type) { $Type.FullName.Replace('+', '.') }

#endregion

#region Markdown

function ConvertTo-Paragraphs([string[]] $Lines) {
    $paragraphs = [System.Collections.Generic.List[string]]::new()
    $block = [System.Collections.Generic.List[string]]::new()
    $flush = {
        if ($block.Count -gt 0) {
            $allBullets = @($block | Where-Object { $_ -notmatch '^\s*- ' }).Count -eq 0
            $paragraphs.Add($(if ($allBullets) { ($block | ForEach-Object { $_.Trim() }) -join "`n" } else { ($block | ForEach-Object { $_.Trim() }) -join ' ' }))
            $block.Clear()
        }
    }
    foreach ($line in $Lines) {
        if ($line.Trim() -eq '') { & $flush } else { $block.Add($line) }
    }
    & $flush
    , $paragraphs.ToArray()
}

function Read-HelpMarkdown([string] $Path, [string] $CommandName) {
    $file = Split-Path -Leaf $Path
    $lines = (Get-Content -LiteralPath $Path -Raw) -split '\r?\n'
    $result = [ordered]@{ Description = @(); Examples = [System.Collections.Generic.List[object]]::new(); Notes = @(); Links = [System.Collections.Generic.List[object]]::new() }
    # Sections: heading + body lines.
    $sections = [System.Collections.Generic.List[object]]::new()
    $current = $null
    $inFence = $false
    for ($i = 0; $i -lt $lines.Count; $i++) {
        $line = $lines[$i]
        if ($line -match '^\s*```') { $inFence = -not $inFence }
        if (-not $inFence -and $line -match '^#\s+(.+?)\s*$' -and $null -eq $current -and $sections.Count -eq 0) {
            if ($Matches[1] -ne $CommandName) { $Problems.Add("${file}: the title '# $($Matches[1])' is not the cmdlet's name '$CommandName'.") }
            continue
        }
        if (-not $inFence -and $line -match '^##\s+(.+?)\s*$') {
            $current = [pscustomobject]@{ Heading = $Matches[1]; Line = $i + 1; Body = [System.Collections.Generic.List[string]]::new() }
            $sections.Add($current)
            continue
        }
        if ($null -eq $current) {
            if ($line.Trim() -ne '') { $Problems.Add("${file}:$($i + 1): text before the first '## ' section.") }
            continue
        }
        $current.Body.Add($line)
    }
    if ($inFence) { $Problems.Add("${file}: a ``````powershell block is not closed.") }

    $seen = @{}
    foreach ($s in $sections) {
        $where = "${file}:$($s.Line)"
        switch -Regex ($s.Heading) {
            '^Description$' {
                if ($seen.ContainsKey('Description')) { $Problems.Add("${where}: a second '## Description'.") }
                $seen['Description'] = $true
                $result.Description = ConvertTo-Paragraphs $s.Body
                if ($result.Description.Count -eq 0) { $Problems.Add("${where}: '## Description' is empty.") }
            }
            '^Example\s+(\d+)\s*:\s*(.+)$' {
                $number = [int]$Matches[1]
                $title = $Matches[2].Trim()
                if ($number -ne $result.Examples.Count + 1) { $Problems.Add("${where}: example $number should be numbered $($result.Examples.Count + 1).") }
                $code = [System.Collections.Generic.List[string]]::new()
                $remarks = [System.Collections.Generic.List[string]]::new()
                $state = 'before'
                $fences = 0
                foreach ($line in $s.Body) {
                    if ($state -eq 'code') {
                        if ($line -match '^\s*```\s*$') { $state = 'after' } else { $code.Add($line) }
                    }
                    elseif ($line -match '^\s*```(.*)$') {
                        $fences++
                        if ($Matches[1].Trim() -ne 'powershell') { $Problems.Add("${where}: the code block must be marked ``````powershell, not ``````$($Matches[1].Trim()).") }
                        $state = 'code'
                    }
                    elseif ($state -eq 'before') {
                        if ($line.Trim() -ne '') { $Problems.Add("${where}: text before the example's code block; put remarks after it.") }
                    }
                    else { $remarks.Add($line) }
                }
                if ($fences -ne 1) { $Problems.Add("${where}: example $number needs exactly one ``````powershell block (found $fences).") }
                $codeText = ($code -join "`n").Trim("`n")
                if ($codeText.Trim() -eq '') { $Problems.Add("${where}: example $number has no code.") }
                $remarkParas = ConvertTo-Paragraphs $remarks
                if ($remarkParas.Count -eq 0) { $Problems.Add("${where}: example $number has no remarks after its code block.") }
                $result.Examples.Add([pscustomobject]@{ Title = "Example ${number}: $title"; Code = $codeText; Remarks = $remarkParas })
                break
            }
            '^Example' { $Problems.Add("${where}: write example headings as '## Example N: Title'.") }
            '^Notes$' { $result.Notes = ConvertTo-Paragraphs $s.Body }
            '^Related Links$' {
                foreach ($line in $s.Body) {
                    if ($line.Trim() -eq '') { continue }
                    if ($line -match '^\s*-\s+\[(.+?)\]\((.+?)\)\s*$') { $result.Links.Add([pscustomobject]@{ Text = $Matches[1]; Uri = $Matches[2] }) }
                    elseif ($line -match '^\s*-\s+(\S.*?)\s*$') { $result.Links.Add([pscustomobject]@{ Text = $Matches[1]; Uri = '' }) }
                    else { $Problems.Add("${where}: related links are '- Name' or '- [Text](uri)' lines, not '$line'.") }
                }
            }
            default { $Problems.Add("${where}: unknown section '## $($s.Heading)' (known: Description, Example N: Title, Notes, Related Links).") }
        }
    }
    if (-not $seen.ContainsKey('Description')) { $Problems.Add("${file}: no '## Description' section.") }
    if ($result.Examples.Count -eq 0) { $Problems.Add("${file}: no '## Example 1: Title' section; every cmdlet needs at least one example.") }
    [pscustomobject]$result
}

#endregion

#region Metadata

$CommonParameters = [System.Collections.Generic.HashSet[string]]::new(
    [string[]]([System.Management.Automation.PSCmdlet]::CommonParameters + 'UseTransaction'), [StringComparer]::OrdinalIgnoreCase)

# The name a type is shown with: String[], Int32, VmState (Nullable<T> shown as T).
function Get-ShortTypeName([type] $Type) {
    if ($Type.IsArray) { return (Get-ShortTypeName $Type.GetElementType()) + '[]' }
    $inner = [Nullable]::GetUnderlyingType($Type)
    if ($inner) { return Get-ShortTypeName $inner }
    if ($Type.IsGenericType) { return $Type.Name -replace '`\d+$', '' }
    $Type.Name
}

function Get-FullTypeName([type] $Type) {
    if ($Type.IsArray) { return (Get-FullTypeName $Type.GetElementType()) + '[]' }
    $inner = [Nullable]::GetUnderlyingType($Type)
    if ($inner) { return Get-FullTypeName $inner }
    $Type.FullName
}

function Get-ElementType([type] $Type) {
    if ($Type.IsArray) { $Type = $Type.GetElementType() }
    $inner = [Nullable]::GetUnderlyingType($Type)
    if ($inner) { $inner } else { $Type }
}

function Format-DefaultValue($Value) {
    if ($null -eq $Value) { return 'None' }
    if ($Value -is [System.Management.Automation.SwitchParameter]) { return [string]$Value.IsPresent }
    if ($Value -is [string]) { if ($Value -eq '') { return 'None' } else { return $Value } }
    if ($Value -is [array]) { if ($Value.Count -eq 0) { return 'None' } else { return ($Value -join ', ') } }
    [string]$Value
}

# One entry per parameter: what the help says about it, merged over its parameter sets.
function Get-ParameterHelp($Command, $Instance, [hashtable] $Doc) {
    $type = $Command.ImplementingType
    $list = [System.Collections.Generic.List[object]]::new()
    $order = 0
    foreach ($meta in $Command.Parameters.Values) {
        if ($CommonParameters.Contains($meta.Name)) { continue }
        $inSets = foreach ($set in $Command.ParameterSets) { $set.Parameters | Where-Object Name -EQ $meta.Name }
        $inSets = @($inSets)
        $property = $type.GetProperty($meta.Name)
        $description = @()
        if ($RiskParameterText.ContainsKey($meta.Name) -and -not $property) {
            $description = @($RiskParameterText[$meta.Name])
        }
        elseif ($property) {
            $id = "P:$(Get-DocMemberId $property.DeclaringType).$($property.Name)"
            if ($Doc.ContainsKey($id) -and $Doc[$id]) { $description = @($Doc[$id]) }
            else { $Problems.Add("$($Command.Name) -$($meta.Name): no <summary> for $id in the XML documentation.") }
        }
        else { $Problems.Add("$($Command.Name) -$($meta.Name): no property of that name on $($type.FullName).") }

        $range = $meta.Attributes | Where-Object { $_ -is [System.Management.Automation.ValidateRangeAttribute] } | Select-Object -First 1
        if ($range -and $description) { $description += "Accepted values: $($range.MinRange) to $($range.MaxRange)." }

        $element = Get-ElementType $meta.ParameterType
        $values = @()
        if ($element.IsEnum) { $values = [Enum]::GetNames($element) }
        $set = $meta.Attributes | Where-Object { $_ -is [System.Management.Automation.ValidateSetAttribute] } | Select-Object -First 1
        if ($set) { $values = @($set.ValidValues) }

        $byValue = @($inSets | Where-Object ValueFromPipeline).Count -gt 0
        $byProperty = @($inSets | Where-Object ValueFromPipelineByPropertyName).Count -gt 0
        $pipeline = if ($byValue -and $byProperty) { 'True (ByPropertyName, ByValue)' }
        elseif ($byValue) { 'True (ByValue)' } elseif ($byProperty) { 'True (ByPropertyName)' } else { 'False' }
        $positions = @($inSets | Where-Object { $_.Position -ge 0 } | ForEach-Object Position | Select-Object -Unique)

        $default = if ($meta.SwitchParameter -and -not $property) { 'False' }
        elseif ($property -and $Instance) { Format-DefaultValue $property.GetValue($Instance) } else { 'None' }

        $list.Add([pscustomobject]@{
                Name           = $meta.Name
                Order          = $order++
                Type           = $meta.ParameterType
                IsSwitch       = $meta.SwitchParameter
                Description    = $description
                Required       = $inSets.Count -gt 0 -and @($inSets | Where-Object { -not $_.IsMandatory }).Count -eq 0
                Position       = if ($positions.Count -gt 0) { [string]$positions[0] } else { 'named' }
                Pipeline       = $pipeline
                ByValue        = $byValue
                ByProperty     = $byProperty
                Globbing       = @($meta.Attributes | Where-Object { $_ -is [System.Management.Automation.SupportsWildcardsAttribute] }).Count -gt 0
                Aliases        = if ($meta.Aliases.Count -gt 0) { $meta.Aliases -join ', ' } else { 'none' }
                Default        = $default
                Values         = $values
                VariableLength = $meta.ParameterType.IsArray
            })
    }
    # Positional parameters first, by position; then the mandatory ones; then the rest, each group
    # in declaration order (the cmdlet's own properties before the base class's).
    $list | Sort-Object @{ Expression = { if ($_.Position -ne 'named') { 0 } elseif ($_.Required) { 1 } else { 2 } } },
    @{ Expression = { if ($_.Position -ne 'named') { [int]$_.Position } else { 0 } } }, Order
}

#endregion

#region MAML writing

function Write-Paragraphs([System.Xml.XmlWriter] $W, [string[]] $Paragraphs) {
    foreach ($p in $Paragraphs) { $W.WriteElementString('maml', 'para', $NsMaml, $p) }
}

function Write-Description([System.Xml.XmlWriter] $W, [string[]] $Paragraphs) {
    $W.WriteStartElement('maml', 'description', $NsMaml)
    Write-Paragraphs $W $Paragraphs
    $W.WriteEndElement()
}

function Write-Type([System.Xml.XmlWriter] $W, [string] $Name) {
    $W.WriteStartElement('dev', 'type', $NsDev)
    $W.WriteElementString('maml', 'name', $NsMaml, $Name)
    $W.WriteElementString('maml', 'uri', $NsMaml, '')
    $W.WriteEndElement()
}

# <command:parameter>, as in the syntax (per set: $Required, $Position) or in the parameter list.
function Write-Parameter([System.Xml.XmlWriter] $W, $P, [bool] $Required, [string] $Position, [bool] $InSyntax) {
    $W.WriteStartElement('command', 'parameter', $NsCommand)
    $W.WriteAttributeString('required', $Required.ToString().ToLowerInvariant())
    $W.WriteAttributeString('variableLength', $P.VariableLength.ToString().ToLowerInvariant())
    $W.WriteAttributeString('globbing', $P.Globbing.ToString().ToLowerInvariant())
    $W.WriteAttributeString('pipelineInput', $P.Pipeline)
    $W.WriteAttributeString('position', $Position)
    $W.WriteAttributeString('aliases', $P.Aliases)
    $W.WriteElementString('maml', 'name', $NsMaml, $P.Name)
    Write-Description $W $P.Description
    if ($P.Values.Count -gt 0) {
        $W.WriteStartElement('command', 'parameterValueGroup', $NsCommand)
        foreach ($v in $P.Values) {
            $W.WriteStartElement('command', 'parameterValue', $NsCommand)
            $W.WriteAttributeString('required', 'false')
            $W.WriteAttributeString('command', 'variableLength', $NsCommand, 'false')
            $W.WriteString($v)
            $W.WriteEndElement()
        }
        $W.WriteEndElement()
    }
    # A switch has no value: without parameterValue the syntax shows [-Force], not [-Force <SwitchParameter>].
    if (-not ($InSyntax -and $P.IsSwitch)) {
        $W.WriteStartElement('command', 'parameterValue', $NsCommand)
        $W.WriteAttributeString('required', (-not $P.IsSwitch).ToString().ToLowerInvariant())
        $W.WriteAttributeString('variableLength', $P.VariableLength.ToString().ToLowerInvariant())
        $W.WriteString((Get-ShortTypeName $P.Type))
        $W.WriteEndElement()
    }
    Write-Type $W (Get-ShortTypeName $P.Type)
    $W.WriteElementString('dev', 'defaultValue', $NsDev, $P.Default)
    $W.WriteEndElement()
}

function Write-Command([System.Xml.XmlWriter] $W, $Command, [string] $Synopsis, $Md, $Parameters) {
    $W.WriteStartElement('command', 'command', $NsCommand)
    $W.WriteAttributeString('xmlns', 'maml', $null, $NsMaml)
    $W.WriteAttributeString('xmlns', 'command', $null, $NsCommand)
    $W.WriteAttributeString('xmlns', 'dev', $null, $NsDev)
    $W.WriteAttributeString('xmlns', 'MSHelp', $null, $NsMsHelp)

    $W.WriteStartElement('command', 'details', $NsCommand)
    $W.WriteElementString('command', 'name', $NsCommand, $Command.Name)
    $W.WriteElementString('command', 'verb', $NsCommand, $Command.Verb)
    $W.WriteElementString('command', 'noun', $NsCommand, $Command.Noun)
    Write-Description $W @($Synopsis)
    $W.WriteEndElement()

    Write-Description $W $Md.Description

    # Syntax: one item per parameter set, the default set first; positional parameters by position,
    # then the mandatory ones, then the rest, each group in declaration order.
    $W.WriteStartElement('command', 'syntax', $NsCommand)
    $sets = @($Command.ParameterSets | Sort-Object { -not $_.IsDefault }, Name)
    foreach ($set in $sets) {
        $W.WriteStartElement('command', 'syntaxItem', $NsCommand)
        $W.WriteElementString('maml', 'name', $NsMaml, $Command.Name)
        $inSet = foreach ($sp in $set.Parameters) {
            $p = $Parameters | Where-Object Name -EQ $sp.Name
            if ($p) { [pscustomobject]@{ P = $p; Set = $sp } }
        }
        $sorted = @($inSet) | Sort-Object `
        @{ Expression = { if ($_.Set.Position -ge 0) { 0 } elseif ($_.Set.IsMandatory) { 1 } else { 2 } } },
        @{ Expression = { if ($_.Set.Position -ge 0) { $_.Set.Position } else { 0 } } },
        @{ Expression = { $_.P.Order } }
        foreach ($item in $sorted) {
            $position = if ($item.Set.Position -ge 0) { [string]$item.Set.Position } else { 'named' }
            Write-Parameter $W $item.P $item.Set.IsMandatory $position $true
        }
        $W.WriteEndElement()
    }
    $W.WriteEndElement()

    $W.WriteStartElement('command', 'parameters', $NsCommand)
    foreach ($p in $Parameters) { Write-Parameter $W $p $p.Required $p.Position $false }
    $W.WriteEndElement()

    # Inputs: what the pipeline can carry into the cmdlet.
    $W.WriteStartElement('command', 'inputTypes', $NsCommand)
    $piped = @($Parameters | Where-Object { $_.ByValue -or $_.ByProperty })
    if ($piped.Count -eq 0) {
        $W.WriteStartElement('command', 'inputType', $NsCommand)
        Write-Type $W 'None'
        Write-Description $W @('You cannot pipe objects to this cmdlet.')
        $W.WriteEndElement()
    }
    foreach ($p in $piped) {
        $how = if ($p.ByValue -and $p.ByProperty) { "by value, or as the $($p.Name) property of other objects" }
        elseif ($p.ByValue) { 'by value' } else { "as the $($p.Name) property of objects" }
        $W.WriteStartElement('command', 'inputType', $NsCommand)
        Write-Type $W (Get-FullTypeName (Get-ElementType $p.Type))
        Write-Description $W @("You can pipe $(Get-ShortTypeName (Get-ElementType $p.Type)) to the -$($p.Name) parameter ($how).")
        $W.WriteEndElement()
    }
    $W.WriteEndElement()

    # Outputs: [OutputType].
    $W.WriteStartElement('command', 'returnValues', $NsCommand)
    $outputs = @($Command.OutputType | Where-Object { $_.Type -ne [void] -and $_.Name -ne 'System.Void' })
    if ($outputs.Count -eq 0) {
        $W.WriteStartElement('command', 'returnValue', $NsCommand)
        Write-Type $W 'None'
        Write-Description $W @('This cmdlet returns no output.')
        $W.WriteEndElement()
    }
    $passThru = @($Parameters | Where-Object Name -EQ 'PassThru').Count -gt 0
    foreach ($o in $outputs) {
        $text = @()
        if ($o.Type) {
            $typeDoc = Get-TypeSummary $o.Type
            if ($typeDoc) { $text += $typeDoc }
        }
        if ($passThru) { $text = @("With -PassThru, this cmdlet returns the $($o.Name.Split('.')[-1]) objects it acted on; otherwise it returns nothing.") + $text }
        if ($text.Count -eq 0) { $text = @("$($o.Name) objects.") }
        $W.WriteStartElement('command', 'returnValue', $NsCommand)
        Write-Type $W $o.Name
        Write-Description $W $text
        $W.WriteEndElement()
    }
    $W.WriteEndElement()

    if ($Md.Notes.Count -gt 0) {
        $W.WriteStartElement('maml', 'alertSet', $NsMaml)
        $W.WriteStartElement('maml', 'alert', $NsMaml)
        Write-Paragraphs $W $Md.Notes
        $W.WriteEndElement()
        $W.WriteEndElement()
    }

    $W.WriteStartElement('command', 'examples', $NsCommand)
    foreach ($e in $Md.Examples) {
        $W.WriteStartElement('command', 'example', $NsCommand)
        $W.WriteElementString('maml', 'title', $NsMaml, "-------------------------- $($e.Title) --------------------------")
        $W.WriteElementString('dev', 'code', $NsDev, $e.Code)
        $W.WriteStartElement('dev', 'remarks', $NsDev)
        Write-Paragraphs $W $e.Remarks
        $W.WriteEndElement()
        $W.WriteEndElement()
    }
    $W.WriteEndElement()

    $W.WriteStartElement('command', 'relatedLinks', $NsCommand)
    foreach ($l in $Md.Links) {
        $W.WriteStartElement('maml', 'navigationLink', $NsMaml)
        $W.WriteElementString('maml', 'linkText', $NsMaml, $l.Text)
        $W.WriteElementString('maml', 'uri', $NsMaml, $l.Uri)
        $W.WriteEndElement()
    }
    $W.WriteEndElement()

    $W.WriteEndElement()
}

# The <summary> of a type, from the XML doc beside the assembly that defines it (null when none).
$TypeDocCache = @{}
function Get-TypeSummary([type] $Type) {
    $location = $Type.Assembly.Location
    if (-not $location) { return $null }
    $xml = [IO.Path]::ChangeExtension($location, '.xml')
    if (-not $TypeDocCache.ContainsKey($xml)) { $TypeDocCache[$xml] = Read-XmlDoc $xml }
    $TypeDocCache[$xml]["T:$(Get-DocMemberId $Type)"]
}

#endregion

$module = Import-Module -Name (Resolve-Path -LiteralPath $ModulePath).ProviderPath -PassThru -Force
if (-not (Test-Path -LiteralPath $XmlDocPath)) {
    throw "New-MamlHelp: the XML documentation file '$XmlDocPath' does not exist. Build with <GenerateDocumentationFile>true</GenerateDocumentationFile>."
}
$doc = Read-XmlDoc $XmlDocPath
if (-not (Test-Path -LiteralPath $DocsPath)) { throw "New-MamlHelp: the help sources folder '$DocsPath' does not exist." }
$DocsPath = (Resolve-Path -LiteralPath $DocsPath).ProviderPath

$commands = @(Get-Command -Module $module.Name -CommandType Cmdlet | Sort-Object Noun, Verb)
if ($commands.Count -eq 0) { throw "New-MamlHelp: the module '$ModulePath' exports no cmdlets." }

$entries = foreach ($command in $commands) {
    $synopsis = $doc["T:$(Get-DocMemberId $command.ImplementingType)"]
    if (-not $synopsis) { $Problems.Add("$($command.Name): no <summary> on the class $($command.ImplementingType.FullName) (the synopsis).") }
    $mdPath = Join-Path $DocsPath "$($command.Name).md"
    $md = if (Test-Path -LiteralPath $mdPath) { Read-HelpMarkdown $mdPath $command.Name }
    else { $Problems.Add("$($command.Name): no help source '$mdPath' (description and examples)."); $null }
    $instance = $null
    try { $instance = [Activator]::CreateInstance($command.ImplementingType) }
    catch { Write-Warning "$($command.Name): cannot make an instance to read default values: $($_.Exception.Message)" }
    $parameters = Get-ParameterHelp $command $instance $doc
    if ($instance -is [IDisposable]) { $instance.Dispose() }
    [pscustomobject]@{ Command = $command; Synopsis = $synopsis; Md = $md; Parameters = $parameters }
}

foreach ($file in Get-ChildItem -LiteralPath $DocsPath -Filter '*.md') {
    if ($file.BaseName -notin $commands.Name) { $Problems.Add("$($file.Name): the module exports no cmdlet '$($file.BaseName)'.") }
}

if ($Problems.Count -gt 0) {
    # One problem a line on standard error, and a failing exit code that breaks the build.
    [Console]::Error.WriteLine("New-MamlHelp: the help of the MacVm cmdlets is incomplete ($($Problems.Count) problem(s)); nothing was written:")
    foreach ($p in $Problems) { [Console]::Error.WriteLine("  $p") }
    exit 1
}

$OutputPath = [IO.Path]::GetFullPath($OutputPath, (Get-Location).ProviderPath)
$null = New-Item -ItemType Directory -Force (Split-Path -Parent $OutputPath)
$settings = [System.Xml.XmlWriterSettings]@{ Indent = $true; Encoding = [System.Text.UTF8Encoding]::new($false) }
$temp = "$OutputPath.tmp"
$writer = [System.Xml.XmlWriter]::Create($temp, $settings)
try {
    $writer.WriteStartDocument()
    $writer.WriteStartElement('helpItems', 'http://msh')
    $writer.WriteAttributeString('schema', 'maml')
    foreach ($e in $entries) { Write-Command $writer $e.Command $e.Synopsis $e.Md $e.Parameters }
    $writer.WriteEndElement()
    $writer.WriteEndDocument()
}
finally {
    $writer.Dispose()
}
Move-Item -Force -LiteralPath $temp -Destination $OutputPath
Write-Host "   help for $($commands.Count) cmdlets in $OutputPath"
