<?php
echo "a" +;
